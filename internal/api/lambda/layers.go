package lambda

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/registry"
)

const layersPath = "/2018-10-31/layers"

func (a *API) registerLayers(mux *http.ServeMux) {
	mux.HandleFunc("POST "+layersPath+"/{layer}/versions", a.h("PublishLayerVersion", a.publishLayer))
	mux.HandleFunc("GET "+layersPath+"/{layer}/versions", a.h("ListLayerVersions", a.listLayerVersions))
	mux.HandleFunc("GET "+layersPath+"/{layer}/versions/{version}", a.h("GetLayerVersion", a.getLayerVersion))
	mux.HandleFunc("DELETE "+layersPath+"/{layer}/versions/{version}", a.h("DeleteLayerVersion", a.deleteLayerVersion))
	mux.HandleFunc("POST "+layersPath+"/{layer}/versions/{version}/policy", a.h("AddLayerVersionPermission", a.addLayerPermission))
	mux.HandleFunc("GET "+layersPath+"/{layer}/versions/{version}/policy", a.h("GetLayerVersionPolicy", a.getLayerPolicy))
	mux.HandleFunc("DELETE "+layersPath+"/{layer}/versions/{version}/policy/{sid}", a.h("RemoveLayerVersionPermission", a.removeLayerPermission))
	// ListLayers, and GetLayerVersionByArn (?find=LayerVersion&Arn=...).
	mux.HandleFunc("GET "+layersPath, a.layersRoot)
}

// layersRoot is ListLayers, or GetLayerVersionByArn with its query; each
// authorized as its own action.
func (a *API) layersRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("find") == "LayerVersion" {
		a.h("GetLayerVersion", a.getLayerVersionByARN)(w, r)
		return
	}
	a.h("ListLayers", a.listLayers)(w, r)
}

type layerContent struct {
	Location   string `json:"Location,omitempty"`
	CodeSha256 string `json:"CodeSha256"`
	CodeSize   int64  `json:"CodeSize"`
}

type layerVersionOut struct {
	Content                 *layerContent `json:"Content,omitempty"`
	LayerArn                string        `json:"LayerArn"`
	LayerVersionArn         string        `json:"LayerVersionArn"`
	Description             string        `json:"Description"`
	CreatedDate             string        `json:"CreatedDate"`
	Version                 int           `json:"Version"`
	CompatibleRuntimes      []string      `json:"CompatibleRuntimes,omitempty"`
	CompatibleArchitectures []string      `json:"CompatibleArchitectures,omitempty"`
	LicenseInfo             string        `json:"LicenseInfo,omitempty"`
}

func (a *API) layerOut(lv *function.LayerVersion, withContent bool) layerVersionOut {
	out := layerVersionOut{
		LayerArn:                function.LayerARN(a.opts.Region, lv.Name),
		LayerVersionArn:         function.LayerVersionARN(a.opts.Region, lv.Name, lv.Version),
		Description:             lv.Description,
		CreatedDate:             lv.Created.UTC().Format("2006-01-02T15:04:05.000-0700"),
		Version:                 lv.Version,
		CompatibleRuntimes:      lv.CompatibleRuntimes,
		CompatibleArchitectures: lv.CompatibleArchitectures,
		LicenseInfo:             lv.License,
	}
	if withContent {
		out.Content = &layerContent{CodeSha256: lv.CodeSha256, CodeSize: lv.CodeSize}
		out.Content.Location = a.codeLocation(lv.Key()) // as Lambda's presigned S3 URL
	}
	return out
}

func layersOut(refs []function.LayerRef) []layerOut {
	var out []layerOut
	for _, l := range refs {
		out = append(out, layerOut{Arn: l.ARN, CodeSize: l.CodeSize})
	}
	return out
}

func (a *API) layerVersionRef(r *http.Request) (string, int, error) {
	name := r.PathValue("layer")
	if err := function.ValidateLayerName(name); err != nil {
		return "", 0, err
	}
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		return "", 0, function.Errorf(function.ErrInvalid, "Layer version %q is not a positive number", r.PathValue("version"))
	}
	return name, v, nil
}

func (a *API) publishLayer(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Description             string    `json:"Description"`
		Content                 codeInput `json:"Content"`
		CompatibleRuntimes      []string  `json:"CompatibleRuntimes"`
		CompatibleArchitectures []string  `json:"CompatibleArchitectures"`
		LicenseInfo             string    `json:"LicenseInfo"`
	}
	if err := decode(r, &in, "PublishLayerVersion"); err != nil {
		return err
	}
	zip, err := a.zip(r, &in.Content)
	if err != nil {
		return err
	}
	if len(in.CompatibleRuntimes) > 15 || len(in.CompatibleArchitectures) > 2 {
		return function.Errorf(function.ErrInvalid, "CompatibleRuntimes takes at most 15 runtimes and CompatibleArchitectures at most 2")
	}
	for _, arch := range in.CompatibleArchitectures {
		if arch != "x86_64" && arch != "arm64" {
			return function.Errorf(function.ErrInvalid, "Value '%s' at 'compatibleArchitectures' failed to satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]", arch)
		}
	}
	lv, err := a.reg.PublishLayer(r.Context(), &function.LayerVersion{Name: r.PathValue("layer"), Description: in.Description, License: in.LicenseInfo,
		CompatibleRuntimes: in.CompatibleRuntimes, CompatibleArchitectures: in.CompatibleArchitectures}, zip)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.layerOut(lv, true))
	return nil
}

func (a *API) getLayerVersion(w http.ResponseWriter, r *http.Request) error {
	name, v, err := a.layerVersionRef(r)
	if err != nil {
		return err
	}
	lv, err := a.reg.Layer(r.Context(), name, v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.layerOut(lv, true))
	return nil
}

func (a *API) getLayerVersionByARN(w http.ResponseWriter, r *http.Request) error {
	name, v, err := function.ParseLayerVersionARN(r.URL.Query().Get("Arn"))
	if err != nil {
		return err
	}
	lv, err := a.reg.Layer(r.Context(), name, v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.layerOut(lv, true))
	return nil
}

func (a *API) deleteLayerVersion(w http.ResponseWriter, r *http.Request) error {
	name, v, err := a.layerVersionRef(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteLayerVersion(r.Context(), name, v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// pageOf pages a list by Marker (an index) and MaxItems (at most 50).
func pageOf[T any](q url.Values, all []T) ([]T, string) {
	start, _ := strconv.Atoi(q.Get("Marker"))
	max := 50
	if n, err := strconv.Atoi(q.Get("MaxItems")); err == nil && n > 0 && n < max {
		max = n
	}
	if start < 0 || start > len(all) {
		start = len(all)
	}
	end := min(start+max, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[start:end], next
}

func compatible(lv *function.LayerVersion, runtime, arch string) bool {
	ok := runtime == ""
	for _, rt := range lv.CompatibleRuntimes {
		ok = ok || rt == runtime
	}
	okArch := arch == ""
	for _, a := range lv.CompatibleArchitectures {
		okArch = okArch || a == arch
	}
	return ok && okArch
}

func (a *API) listLayerVersions(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("layer")
	if err := function.ValidateLayerName(name); err != nil {
		return err
	}
	all, err := a.reg.LayerVersions(r.Context(), name)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var out []layerVersionOut
	for _, lv := range all {
		if compatible(lv, q.Get("CompatibleRuntime"), q.Get("CompatibleArchitecture")) {
			out = append(out, a.layerOut(lv, false))
		}
	}
	page, next := pageOf(q, out)
	writeJSON(w, http.StatusOK, map[string]any{"LayerVersions": nonNil(page), "NextMarker": next})
	return nil
}

func (a *API) listLayers(w http.ResponseWriter, r *http.Request) error {
	all, err := a.reg.LayerVersions(r.Context(), "")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	type layer struct {
		LayerName             string          `json:"LayerName"`
		LayerArn              string          `json:"LayerArn"`
		LatestMatchingVersion layerVersionOut `json:"LatestMatchingVersion"`
	}
	var out []layer
	seen := map[string]bool{}
	for _, lv := range all { // newest first within each layer
		if seen[lv.Name] || !compatible(lv, q.Get("CompatibleRuntime"), q.Get("CompatibleArchitecture")) {
			continue
		}
		seen[lv.Name] = true
		out = append(out, layer{LayerName: lv.Name, LayerArn: function.LayerARN(a.opts.Region, lv.Name), LatestMatchingVersion: a.layerOut(lv, false)})
	}
	page, next := pageOf(q, out)
	writeJSON(w, http.StatusOK, map[string]any{"Layers": nonNil(page), "NextMarker": next})
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Layer version policies are kept and returned as Lambda returns them;
// with one account, every caller IAM allows may use any layer.
func (a *API) addLayerPermission(w http.ResponseWriter, r *http.Request) error {
	name, v, err := a.layerVersionRef(r)
	if err != nil {
		return err
	}
	var in struct {
		StatementID    string `json:"StatementId"`
		Action         string `json:"Action"`
		Principal      string `json:"Principal"`
		OrganizationID string `json:"OrganizationId"`
	}
	if err := decode(r, &in, "AddLayerVersionPermission"); err != nil {
		return err
	}
	if in.StatementID == "" || in.Action != "lambda:GetLayerVersion" || in.Principal == "" {
		return function.Errorf(function.ErrInvalid, "StatementId, Principal and Action (lambda:GetLayerVersion) are required")
	}
	st := function.LayerStatement{Sid: in.StatementID, Action: in.Action, Principal: in.Principal, OrganizationID: in.OrganizationID}
	lv, err := a.reg.UpdateLayerPolicy(r.Context(), name, v, func(lv *function.LayerVersion) error {
		for _, s := range lv.Policy {
			if s.Sid == st.Sid {
				return function.Errorf(registry.ErrExists, "The statement id (%s) provided already exists. Please provide a new statement id, or remove the existing statement.", st.Sid)
			}
		}
		lv.Policy = append(lv.Policy, st)
		return nil
	})
	if err != nil {
		return err
	}
	doc, _ := json.Marshal(a.layerStatement(lv, st))
	writeJSON(w, http.StatusCreated, map[string]string{"Statement": string(doc), "RevisionId": revisionOf(lv)})
	return nil
}

func (a *API) layerStatement(lv *function.LayerVersion, s function.LayerStatement) map[string]any {
	out := map[string]any{"Sid": s.Sid, "Effect": "Allow", "Action": s.Action,
		"Resource": function.LayerVersionARN(a.opts.Region, lv.Name, lv.Version)}
	if s.Principal == "*" {
		out["Principal"] = "*"
	} else {
		out["Principal"] = map[string]string{"AWS": s.Principal}
	}
	if s.OrganizationID != "" {
		out["Condition"] = map[string]any{"StringEquals": map[string]string{"aws:PrincipalOrgID": s.OrganizationID}}
	}
	return out
}

func revisionOf(lv *function.LayerVersion) string {
	b, _ := json.Marshal(lv.Policy)
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(len(b))))
}

func (a *API) getLayerPolicy(w http.ResponseWriter, r *http.Request) error {
	name, v, err := a.layerVersionRef(r)
	if err != nil {
		return err
	}
	lv, err := a.reg.Layer(r.Context(), name, v)
	if err != nil {
		return err
	}
	if len(lv.Policy) == 0 {
		return registry.ErrLayerNotFound
	}
	var sts []map[string]any
	for _, s := range lv.Policy {
		sts = append(sts, a.layerStatement(lv, s))
	}
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Id": "default", "Statement": sts})
	writeJSON(w, http.StatusOK, map[string]string{"Policy": string(doc), "RevisionId": revisionOf(lv)})
	return nil
}

func (a *API) removeLayerPermission(w http.ResponseWriter, r *http.Request) error {
	name, v, err := a.layerVersionRef(r)
	if err != nil {
		return err
	}
	sid := r.PathValue("sid")
	_, err = a.reg.UpdateLayerPolicy(r.Context(), name, v, func(lv *function.LayerVersion) error {
		for i, s := range lv.Policy {
			if s.Sid == sid {
				lv.Policy = append(lv.Policy[:i], lv.Policy[i+1:]...)
				return nil
			}
		}
		return registry.ErrLayerNotFound
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// layers resolves the layer version ARNs a function names into what its
// configuration keeps, checking the caller may use each (as Lambda checks
// lambda:GetLayerVersion) and that code and layers fit the unzipped limit.
func (a *API) layers(r *http.Request, arns []string, zip []byte) ([]function.LayerRef, error) {
	if len(arns) > function.MaxLayers {
		return nil, function.Errorf(function.ErrInvalid, "Cannot reference more than %d layers.", function.MaxLayers)
	}
	var out []function.LayerRef
	total := int64(0)
	if len(zip) > 0 {
		if pkg, err := function.ListZip(zip); err == nil {
			total = pkg.UnzippedSize
		}
	}
	seen := map[string]bool{}
	for _, arn := range arns {
		name, v, err := function.ParseLayerVersionARN(arn)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, function.Errorf(function.ErrInvalid, "Two different versions of the same layer are not allowed to be referenced in the same function. %s", arn)
		}
		seen[name] = true
		if err := auth.Ask(r.Context(), a.opts.Auth, "lambda:GetLayerVersion", arn); err != nil {
			return nil, err
		}
		lv, err := a.reg.Layer(r.Context(), name, v)
		if err != nil {
			return nil, function.Errorf(function.ErrInvalid, "Layer version %s does not exist.", arn)
		}
		total += lv.UnzippedSize
		out = append(out, function.LayerRef{ARN: function.LayerVersionARN(a.opts.Region, name, v), CodeSize: lv.CodeSize, UnzippedSize: lv.UnzippedSize, Key: lv.Key()})
	}
	if total > function.MaxUnzippedBytes {
		return nil, function.Errorf(function.ErrInvalid, "Function code combined with layers exceeds the maximum allowed size of %d bytes. The actual size is %d bytes.", function.MaxUnzippedBytes, total)
	}
	return out, nil
}
