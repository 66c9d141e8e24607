package lambda

import (
	"net/http"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/recursion"
)

func (a *API) registerRecursion(mux *http.ServeMux) {
	const path = "/2024-08-31/functions/{name}/recursion-config"
	mux.HandleFunc("GET "+path, a.h("GetFunctionRecursionConfig", a.getRecursion))
	mux.HandleFunc("PUT "+path, a.h("PutFunctionRecursionConfig", a.putRecursion))
}

func (a *API) getRecursion(w http.ResponseWriter, r *http.Request) error {
	name, err := a.existingFunction(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"RecursiveLoop": loopSetting(a.reg.Concurrency(name).RecursiveLoop)})
	return nil
}

func (a *API) putRecursion(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	var in struct {
		unsupported
		RecursiveLoop string `json:"RecursiveLoop"`
	}
	name, err := named(r, &in, "PutFunctionRecursionConfig")
	if err == nil {
		err = in.check()
	}
	if err == nil && in.RecursiveLoop != recursion.Allow && in.RecursiveLoop != recursion.Terminate {
		err = function.Errorf(function.ErrInvalid, "RecursiveLoop must be Allow or Terminate, not %q", in.RecursiveLoop)
	}
	if err != nil {
		return a.at(ref, err)
	}
	if _, err := a.reg.UpdateConcurrency(r.Context(), name, func(c *function.Concurrency) error {
		c.RecursiveLoop = in.RecursiveLoop
		return nil
	}); err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"RecursiveLoop": in.RecursiveLoop})
	return nil
}

func loopSetting(s string) string {
	if s == "" {
		return recursion.Terminate
	}
	return s
}

// existingFunction is the unqualified function the path names, which
// must exist (the error is already placed at the request's reference).
func (a *API) existingFunction(r *http.Request) (string, error) {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err == nil {
		_, err = a.reg.Get(name)
	}
	if err != nil {
		return "", a.at(ref, err)
	}
	return name, nil
}
