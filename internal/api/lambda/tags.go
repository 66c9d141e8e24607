package lambda

import (
	"maps"
	"net/http"
	"strings"

	"github.com/stratus-faas/stratus/internal/function"
)

// Tags on functions: TagResource, UntagResource and ListTags, as tools
// such as Terraform call them on every plan. The resource is a function
// ARN (unqualified, as on Lambda).

func (a *API) registerTags(mux *http.ServeMux) {
	const path = "/2017-03-31/tags/{arn}"
	mux.HandleFunc("GET "+path, a.h("ListTags", a.listTags))
	mux.HandleFunc("POST "+path, a.h("TagResource", a.tagResource))
	mux.HandleFunc("DELETE "+path, a.h("UntagResource", a.untagResource))
}

// taggedFunction is the function a tag request's ARN names.
func (a *API) taggedFunction(r *http.Request) (string, error) {
	arn := r.PathValue("arn")
	if !strings.HasPrefix(arn, "arn:") || !strings.Contains(arn, ":function:") {
		return "", function.Invalidf("Resource %s is not a function ARN: Stratus tags functions", arn)
	}
	name, q, err := function.ParseRef(arn)
	if err != nil {
		return "", err
	}
	if q != "" {
		return "", function.Invalidf("Tags are set on the function, not on a version or alias: %s", arn)
	}
	return name, nil
}

func (a *API) listTags(w http.ResponseWriter, r *http.Request) error {
	name, err := a.taggedFunction(r)
	if err != nil {
		return err
	}
	fn, err := a.reg.Get(name)
	if err != nil {
		return a.at(name, err)
	}
	tags := fn.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"Tags": tags})
	return nil
}

func (a *API) tagResource(w http.ResponseWriter, r *http.Request) error {
	name, err := a.taggedFunction(r)
	if err != nil {
		return err
	}
	var in struct {
		Tags map[string]string `json:"Tags"`
	}
	if err := decode(r, &in, "TagResource"); err != nil {
		return a.at(name, err)
	}
	if len(in.Tags) == 0 {
		return a.at(name, function.Invalidf("Tags must hold at least one tag"))
	}
	_, err = a.reg.UpdateConfig(r.Context(), name, "", func(c *function.Config) {
		if c.Tags == nil {
			c.Tags = map[string]string{}
		}
		maps.Copy(c.Tags, in.Tags)
	})
	if err != nil {
		return a.at(name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) untagResource(w http.ResponseWriter, r *http.Request) error {
	name, err := a.taggedFunction(r)
	if err != nil {
		return err
	}
	keys := r.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return a.at(name, function.Invalidf("tagKeys must name at least one tag"))
	}
	_, err = a.reg.UpdateConfig(r.Context(), name, "", func(c *function.Config) {
		for _, k := range keys {
			delete(c.Tags, k)
		}
	})
	if err != nil {
		return a.at(name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
