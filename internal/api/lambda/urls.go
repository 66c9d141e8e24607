package lambda

import (
	"net/http"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
)

func (a *API) registerURLs(mux *http.ServeMux) {
	const path = "/2021-10-31/functions/{name}/url"
	mux.HandleFunc("POST "+path, a.h("CreateFunctionUrlConfig", a.createURL))
	mux.HandleFunc("GET "+path, a.h("GetFunctionUrlConfig", a.getURL))
	mux.HandleFunc("PUT "+path, a.h("UpdateFunctionUrlConfig", a.updateURL))
	mux.HandleFunc("DELETE "+path, a.h("DeleteFunctionUrlConfig", a.deleteURL))
	mux.HandleFunc("GET /2021-10-31/functions/{name}/urls", a.h("ListFunctionUrlConfigs", a.listURLs))
}

type urlInput struct {
	AuthType   *string        `json:"AuthType"`
	Cors       *function.Cors `json:"Cors"`
	InvokeMode *string        `json:"InvokeMode"`
}

type urlOutput struct {
	FunctionURL      string         `json:"FunctionUrl"`
	FunctionArn      string         `json:"FunctionArn"`
	AuthType         string         `json:"AuthType"`
	Cors             *function.Cors `json:"Cors,omitempty"`
	CreationTime     string         `json:"CreationTime"`
	LastModifiedTime string         `json:"LastModifiedTime"`
	InvokeMode       string         `json:"InvokeMode"`
}

// URLOf is the address of a function URL: a path on the HTTP listener,
// which works as given from any client.
func URLOf(gateway, id string) string {
	return strings.TrimRight(gateway, "/") + "/url/" + id + "/"
}

func (a *API) urlOut(u *function.URLConfig) urlOutput {
	q := u.Qualifier
	if q == function.Latest {
		q = ""
	}
	return urlOutput{
		FunctionURL:      URLOf(a.opts.Gateway, u.ID),
		FunctionArn:      function.ARN(a.opts.Region, u.Function, q),
		AuthType:         u.AuthType,
		Cors:             u.Cors,
		CreationTime:     u.Created.UTC().Format("2006-01-02T15:04:05.000Z"),
		LastModifiedTime: u.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"),
		InvokeMode:       u.InvokeMode,
	}
}

func (a *API) createURL(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in urlInput
	if err := decode(r, &in, "CreateFunctionUrlConfig"); err != nil {
		return a.at(ref, err)
	}
	name, q, err := a.urlTarget(r)
	if err != nil {
		return a.at(ref, err)
	}
	u := function.URLConfig{Function: name, Qualifier: q, Cors: in.Cors, LastModified: time.Now()}
	if in.AuthType != nil {
		u.AuthType = *in.AuthType
	}
	if in.InvokeMode != nil {
		u.InvokeMode = *in.InvokeMode
	}
	out, err := a.reg.PutURL(r.Context(), u, true, nil)
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusCreated, a.urlOut(out))
	return nil
}

func (a *API) updateURL(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in urlInput
	if err := decode(r, &in, "UpdateFunctionUrlConfig"); err != nil {
		return a.at(ref, err)
	}
	name, q, err := a.urlTarget(r)
	if err != nil {
		return a.at(ref, err)
	}
	out, err := a.reg.PutURL(r.Context(), function.URLConfig{Function: name, Qualifier: q, LastModified: time.Now()}, false, func(u *function.URLConfig) {
		if in.AuthType != nil {
			u.AuthType = *in.AuthType
		}
		if in.Cors != nil {
			u.Cors = in.Cors
		}
		if in.InvokeMode != nil {
			u.InvokeMode = *in.InvokeMode
		}
	})
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, a.urlOut(out))
	return nil
}

func (a *API) getURL(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, q, err := a.urlTarget(r)
	if err == nil {
		var u *function.URLConfig
		if u, err = a.reg.URL(name, q); err == nil {
			writeJSON(w, http.StatusOK, a.urlOut(u))
			return nil
		}
	}
	return a.at(ref, err)
}

func (a *API) deleteURL(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, q, err := a.urlTarget(r)
	if err == nil {
		err = a.reg.DeleteURL(r.Context(), name, q)
	}
	if err != nil {
		return a.at(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listURLs(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err != nil {
		return a.at(ref, err)
	}
	all, err := a.reg.URLs(name)
	if err != nil {
		return a.at(ref, err)
	}
	page, next, err := paginate(r, len(all), func(i int) string { return all[i].ID })
	if err != nil {
		return a.at(ref, err)
	}
	out := struct {
		Configs    []urlOutput `json:"FunctionUrlConfigs"`
		NextMarker string      `json:"NextMarker,omitempty"`
	}{Configs: []urlOutput{}, NextMarker: next}
	for _, i := range page {
		out.Configs = append(out.Configs, a.urlOut(all[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// urlTarget reads the function and the optional Qualifier (an alias or $LATEST).
func (a *API) urlTarget(r *http.Request) (name, q string, err error) {
	name, q, err = parseRefQualified(r.PathValue("name"))
	if err != nil {
		return "", "", err
	}
	if qq := r.URL.Query().Get("Qualifier"); qq != "" {
		q = qq
	}
	if q == function.Latest {
		q = ""
	}
	return name, q, nil
}

func parseRefQualified(ref string) (string, string, error) { return function.ParseRef(ref) }
