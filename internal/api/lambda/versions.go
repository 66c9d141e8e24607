package lambda

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/registry"
)

func (a *API) registerVersions(mux *http.ServeMux) {
	const fns = "/2015-03-31/functions/{name}"
	mux.HandleFunc("POST "+fns+"/versions", a.h("PublishVersion", a.publishVersion))
	mux.HandleFunc("GET "+fns+"/versions", a.h("ListVersionsByFunction", a.listVersions))
	mux.HandleFunc("POST "+fns+"/aliases", a.h("CreateAlias", a.createAlias))
	mux.HandleFunc("GET "+fns+"/aliases", a.h("ListAliases", a.listAliases))
	mux.HandleFunc("GET "+fns+"/aliases/{alias}", a.h("GetAlias", a.getAlias))
	mux.HandleFunc("PUT "+fns+"/aliases/{alias}", a.h("UpdateAlias", a.updateAlias))
	mux.HandleFunc("DELETE "+fns+"/aliases/{alias}", a.h("DeleteAlias", a.deleteAlias))
	mux.HandleFunc("PUT /2017-10-31/functions/{name}/concurrency", a.h("PutFunctionConcurrency", a.putConcurrency))
	mux.HandleFunc("DELETE /2017-10-31/functions/{name}/concurrency", a.h("DeleteFunctionConcurrency", a.deleteConcurrency))
	mux.HandleFunc("GET /2019-09-30/functions/{name}/concurrency", a.h("GetFunctionConcurrency", a.getConcurrency))
	a.registerProvisioned(mux)
}

func (a *API) publishVersion(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in struct {
		CodeSha256  string `json:"CodeSha256"`
		Description string `json:"Description"`
		RevisionID  string `json:"RevisionId"`
	}
	name, err := named(r, &in, "PublishVersion")
	if err != nil {
		return a.at(ref, err)
	}
	v, err := a.reg.PublishVersion(r.Context(), name, in.CodeSha256, in.Description, in.RevisionID)
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusCreated, a.configuration(v, true))
	return nil
}

func (a *API) listVersions(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err != nil {
		return a.at(ref, err)
	}
	vs, err := a.reg.Versions(name)
	if err != nil {
		return a.at(ref, err)
	}
	page, next, err := paginate(r, len(vs), func(i int) string { return vs[i].VersionLabel() })
	if err != nil {
		return a.at(ref, err)
	}
	out := struct {
		Versions   []functionConfiguration `json:"Versions"`
		NextMarker string                  `json:"NextMarker,omitempty"`
	}{Versions: []functionConfiguration{}, NextMarker: next}
	for _, i := range page {
		out.Versions = append(out.Versions, a.configuration(vs[i], false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// paginate picks the indexes of one page of n items by Marker and MaxItems
// (at most 50), keyed by key.
func paginate(r *http.Request, n int, key func(int) string) (page []int, next string, err error) {
	q := r.URL.Query()
	maxItems := 50
	if s := q.Get("MaxItems"); s != "" {
		m, err := strconv.Atoi(s)
		if err != nil || m < 1 || m > 10000 {
			return nil, "", function.Errorf(function.ErrInvalid, "MaxItems must be between 1 and 10000")
		}
		maxItems = min(m, 50)
	}
	start := 0
	if m := q.Get("Marker"); m != "" {
		start = -1
		for i := range n {
			if key(i) == m {
				start = i + 1
			}
		}
		if start < 0 {
			return nil, "", function.Errorf(function.ErrInvalid, "invalid Marker")
		}
	}
	for i := start; i < n; i++ {
		if len(page) == maxItems {
			return page, key(page[len(page)-1]), nil
		}
		page = append(page, i)
	}
	return page, "", nil
}

type aliasConfiguration struct {
	AliasArn        string         `json:"AliasArn"`
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     string         `json:"Description"`
	RoutingConfig   *routingConfig `json:"RoutingConfig,omitempty"`
	RevisionID      string         `json:"RevisionId"`
}

type routingConfig struct {
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights"`
}

func (a *API) aliasOut(al *function.Alias) aliasConfiguration {
	out := aliasConfiguration{
		AliasArn:        function.ARN(a.opts.Region, al.Function, al.Name),
		Name:            al.Name,
		FunctionVersion: al.FunctionVersion,
		Description:     al.Description,
		RevisionID:      al.RevisionID,
	}
	if len(al.Weights) > 0 {
		out.RoutingConfig = &routingConfig{AdditionalVersionWeights: al.Weights}
	}
	return out
}

type aliasInput struct {
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     *string        `json:"Description"`
	RoutingConfig   *routingConfig `json:"RoutingConfig"`
	RevisionID      string         `json:"RevisionId"`
}

func (a *API) createAlias(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in aliasInput
	name, err := named(r, &in, "CreateAlias")
	if err != nil {
		return a.at(ref, err)
	}
	al := function.Alias{Name: in.Name, Function: name, FunctionVersion: in.FunctionVersion}
	if in.Description != nil {
		al.Description = *in.Description
	}
	if in.RoutingConfig != nil {
		al.Weights = in.RoutingConfig.AdditionalVersionWeights
	}
	out, err := a.reg.PutAlias(r.Context(), al, true, "")
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusCreated, a.aliasOut(out))
	return nil
}

func (a *API) updateAlias(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in aliasInput
	name, err := named(r, &in, "UpdateAlias")
	if err != nil {
		return a.at(ref, err)
	}
	cur, err := a.reg.Alias(name, r.PathValue("alias"))
	if err != nil {
		return a.at(ref, err)
	}
	al := *cur
	if in.FunctionVersion != "" {
		al.FunctionVersion = in.FunctionVersion
	}
	if in.Description != nil {
		al.Description = *in.Description
	}
	if in.RoutingConfig != nil {
		al.Weights = in.RoutingConfig.AdditionalVersionWeights
	}
	out, err := a.reg.PutAlias(r.Context(), al, false, in.RevisionID)
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, a.aliasOut(out))
	return nil
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err == nil {
		var al *function.Alias
		if al, err = a.reg.Alias(name, r.PathValue("alias")); err == nil {
			writeJSON(w, http.StatusOK, a.aliasOut(al))
			return nil
		}
	}
	return a.at(ref, err)
}

func (a *API) listAliases(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err != nil {
		return a.at(ref, err)
	}
	all, err := a.reg.Aliases(name)
	if err != nil {
		return a.at(ref, err)
	}
	if v := r.URL.Query().Get("FunctionVersion"); v != "" {
		var kept []*function.Alias
		for _, al := range all {
			if al.FunctionVersion == v {
				kept = append(kept, al)
			}
		}
		all = kept
	}
	page, next, err := paginate(r, len(all), func(i int) string { return all[i].Name })
	if err != nil {
		return a.at(ref, err)
	}
	out := struct {
		Aliases    []aliasConfiguration `json:"Aliases"`
		NextMarker string               `json:"NextMarker,omitempty"`
	}{Aliases: []aliasConfiguration{}, NextMarker: next}
	for _, i := range page {
		out.Aliases = append(out.Aliases, a.aliasOut(all[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err == nil {
		err = a.reg.DeleteAlias(r.Context(), name, r.PathValue("alias"))
	}
	if err != nil {
		return a.at(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) putConcurrency(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in struct {
		Reserved *int `json:"ReservedConcurrentExecutions"`
	}
	name, err := named(r, &in, "PutFunctionConcurrency")
	if err != nil {
		return a.at(ref, err)
	}
	if in.Reserved == nil || *in.Reserved < 0 {
		return a.at(ref, function.Errorf(function.ErrInvalid, "ReservedConcurrentExecutions must be 0 or more"))
	}
	c, err := a.reg.UpdateConcurrency(r.Context(), name, func(c *function.Concurrency) error {
		others := a.reg.ReservedTotal()
		if c.Reserved != nil {
			others -= *c.Reserved
		}
		floor := minUnreserved(a.inv.MaxConcurrency())
		if unreserved := int(a.inv.MaxConcurrency()) - others - *in.Reserved; unreserved < floor {
			return function.Errorf(function.ErrInvalid, "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [%d].", floor)
		}
		c.Reserved = in.Reserved
		return nil
	})
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, map[string]int{"ReservedConcurrentExecutions": *c.Reserved})
	return nil
}

// minUnreserved is what Lambda keeps unreserved in an account (100), a
// tenth for accounts under 1,000.
func minUnreserved(account int64) int { return int(min(100, account/10)) }

func (a *API) getConcurrency(w http.ResponseWriter, r *http.Request) error {
	name, err := a.existingFunction(r)
	if err != nil {
		return err
	}
	out := map[string]int{}
	if c := a.reg.Concurrency(name); c.Reserved != nil {
		out["ReservedConcurrentExecutions"] = *c.Reserved
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteConcurrency(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err == nil {
		_, err = a.reg.UpdateConcurrency(r.Context(), name, func(c *function.Concurrency) error {
			c.Reserved = nil
			return nil
		})
	}
	if err != nil {
		return a.at(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) registerProvisioned(mux *http.ServeMux) {
	const path = "/2019-09-30/functions/{name}/provisioned-concurrency"
	mux.HandleFunc("PUT "+path, a.h("PutProvisionedConcurrencyConfig", a.putProvisioned))
	mux.HandleFunc("GET "+path, a.h("GetProvisionedConcurrencyConfig", a.getProvisioned))
	mux.HandleFunc("DELETE "+path, a.h("DeleteProvisionedConcurrencyConfig", a.deleteProvisioned))
}

type provisionedOut struct {
	FunctionArn                              string `json:"FunctionArn,omitempty"`
	RequestedProvisionedConcurrentExecutions int    `json:"RequestedProvisionedConcurrentExecutions"`
	AllocatedProvisionedConcurrentExecutions int    `json:"AllocatedProvisionedConcurrentExecutions"`
	AvailableProvisionedConcurrentExecutions int    `json:"AvailableProvisionedConcurrentExecutions"`
	Status                                   string `json:"Status"`
	StatusReason                             string `json:"StatusReason,omitempty"`
	LastModified                             string `json:"LastModified"`
}

func (a *API) provisionedOf(name, q string, pc *function.Provisioned) provisionedOut {
	var st pool.ProvisionedStatus
	if fn, err := a.reg.ResolvePrimary(name, q); err == nil {
		st = a.inv.ProvisionedStatus(fn)
	}
	ready := min(st.Ready, pc.Requested)
	out := provisionedOut{
		RequestedProvisionedConcurrentExecutions: pc.Requested,
		AllocatedProvisionedConcurrentExecutions: ready,
		AvailableProvisionedConcurrentExecutions: ready,
		Status:                                   "IN_PROGRESS",
		LastModified:                             pc.LastModified.UTC().Format("2006-01-02T15:04:05.000-0700"),
	}
	switch {
	case ready >= pc.Requested:
		out.Status = "READY"
	case st.Failed != "":
		out.Status, out.StatusReason = "FAILED", st.Failed
	}
	return out
}

// provisionedTarget validates the Qualifier of a provisioned concurrency call.
func (a *API) provisionedTarget(r *http.Request) (name, q string, err error) {
	name, err = bareName(r.PathValue("name"))
	if err != nil {
		return "", "", err
	}
	q = r.URL.Query().Get("Qualifier")
	if q == "" || q == function.Latest {
		return "", "", function.Errorf(function.ErrInvalid, "Provisioned Concurrency Configs cannot be applied to unpublished function versions; give a version or alias as Qualifier")
	}
	_, err = a.reg.ResolvePrimary(name, q)
	return name, q, err
}

func (a *API) putProvisioned(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in struct {
		N int `json:"ProvisionedConcurrentExecutions"`
	}
	if err := decode(r, &in, "PutProvisionedConcurrencyConfig"); err != nil {
		return a.at(ref, err)
	}
	name, q, err := a.provisionedTarget(r)
	if err != nil {
		return a.at(ref, err)
	}
	if in.N < 1 {
		return a.at(ref, function.Errorf(function.ErrInvalid, "ProvisionedConcurrentExecutions must be at least 1"))
	}
	if fn, err := a.reg.Resolve(name, q); err == nil && fn.MultiConcurrency() {
		// As on Lambda Managed Instances: environments that take many
		// invocations each have no provisioned concurrency.
		return a.at(ref, function.Errorf(function.ErrInvalid, "Provisioned concurrency is not supported for a function with multi-concurrency execution environments (CapacityProviderConfig)"))
	}
	var pc *function.Provisioned
	_, err = a.reg.UpdateConcurrency(r.Context(), name, func(c *function.Concurrency) error {
		total := in.N
		for other, p := range c.Provisioned {
			if other != q {
				total += p.Requested
			}
		}
		if c.Reserved != nil && total > *c.Reserved {
			return function.Errorf(function.ErrInvalid, "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")
		}
		if c.Reserved == nil && total > int(a.inv.MaxConcurrency())-a.reg.ReservedTotal()-minUnreserved(a.inv.MaxConcurrency()) {
			return function.Errorf(function.ErrInvalid, "Specified ConcurrentExecutions for function is greater than account's unreserved concurrency")
		}
		pc = &function.Provisioned{Requested: in.N, LastModified: time.Now().UTC()}
		c.Provisioned[q] = pc
		return nil
	})
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusAccepted, a.provisionedOf(name, q, pc))
	return nil
}

func (a *API) getProvisioned(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	if r.URL.Query().Get("List") == "ALL" {
		return a.listProvisioned(w, r)
	}
	name, q, err := a.provisionedTarget(r)
	if err != nil {
		return a.at(ref, err)
	}
	pc := a.reg.Concurrency(name).Provisioned[q]
	if pc == nil {
		return a.at(ref, registry.ErrNoProvisioned)
	}
	writeJSON(w, http.StatusOK, a.provisionedOf(name, q, pc))
	return nil
}

func (a *API) listProvisioned(w http.ResponseWriter, r *http.Request) error {
	name, err := a.existingFunction(r)
	if err != nil {
		return err
	}
	c := a.reg.Concurrency(name)
	qs := make([]string, 0, len(c.Provisioned))
	for q := range c.Provisioned {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	page, next, err := paginate(r, len(qs), func(i int) string { return qs[i] })
	if err != nil {
		return a.at(r.PathValue("name"), err)
	}
	out := struct {
		Configs    []provisionedOut `json:"ProvisionedConcurrencyConfigs"`
		NextMarker string           `json:"NextMarker,omitempty"`
	}{Configs: []provisionedOut{}, NextMarker: next}
	for _, i := range page {
		o := a.provisionedOf(name, qs[i], c.Provisioned[qs[i]])
		o.FunctionArn = function.ARN(a.opts.Region, name, qs[i])
		out.Configs = append(out.Configs, o)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteProvisioned(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, q, err := a.provisionedTarget(r)
	if err == nil {
		_, err = a.reg.UpdateConcurrency(r.Context(), name, func(c *function.Concurrency) error {
			if c.Provisioned[q] == nil {
				return registry.ErrNoProvisioned
			}
			delete(c.Provisioned, q)
			return nil
		})
	}
	if err != nil {
		return a.at(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
