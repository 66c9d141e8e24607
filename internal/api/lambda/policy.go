package lambda

import (
	"encoding/json"
	"net/http"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/registry"
)

// Resource policies: AddPermission, GetPolicy, RemovePermission.
func (a *API) registerPolicy(mux *http.ServeMux) {
	const path = "/2015-03-31/functions/{name}/policy"
	mux.HandleFunc("POST "+path, a.h("AddPermission", a.addPermission))
	mux.HandleFunc("GET "+path, a.h("GetPolicy", a.getPolicy))
	mux.HandleFunc("DELETE "+path+"/{sid}", a.h("RemovePermission", a.removePermission))
}

// target is the function and qualifier a policy request names.
func (a *API) target(r *http.Request) (name, q string, err error) {
	name, q, err = function.ParseRef(r.PathValue("name"))
	if err != nil {
		return "", "", err
	}
	if qq := r.URL.Query().Get("Qualifier"); qq != "" {
		if q != "" && q != qq {
			return "", "", function.Errorf(function.ErrInvalid, "The derived qualifier from the function name does not match the specified qualifier.")
		}
		q = qq
	}
	return name, q, nil
}

func (a *API) addPermission(w http.ResponseWriter, r *http.Request) error {
	name, q, err := a.target(r)
	if err != nil {
		return err
	}
	var in struct {
		StatementID           string `json:"StatementId"`
		Action                string `json:"Action"`
		Principal             string `json:"Principal"`
		SourceArn             string `json:"SourceArn"`
		SourceAccount         string `json:"SourceAccount"`
		FunctionURLAuthType   string `json:"FunctionUrlAuthType"`
		InvokedViaFunctionURL bool   `json:"InvokedViaFunctionUrl"`
		PrincipalOrgID        string `json:"PrincipalOrgID"`
		RevisionID            string `json:"RevisionId"`
	}
	if err := decode(r, &in, "AddPermission"); err != nil {
		return err
	}
	st, err := function.Permission{StatementID: in.StatementID, Action: in.Action, Principal: in.Principal, SourceArn: in.SourceArn,
		SourceAccount: in.SourceAccount, FunctionURLAuthType: in.FunctionURLAuthType, InvokedViaFunctionURL: in.InvokedViaFunctionURL,
		PrincipalOrgID: in.PrincipalOrgID}.Statement(function.ARN(a.opts.Region, name, q))
	if err != nil {
		return err
	}
	if _, err := a.reg.AddPermission(r.Context(), name, q, st, in.RevisionID); err != nil {
		return a.at(name, err)
	}
	doc, _ := jsonString(st)
	writeJSON(w, http.StatusCreated, map[string]string{"Statement": doc})
	return nil
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request) error {
	name, q, err := a.target(r)
	if err != nil {
		return err
	}
	if _, err := a.reg.Resolve(name, q); err != nil {
		return a.at(name, err)
	}
	p := a.reg.Policy(name, q)
	if p == nil {
		return function.Errorf(registry.ErrNoPolicy, "The resource you requested does not exist.")
	}
	writeJSON(w, http.StatusOK, map[string]string{"Policy": p.Document(), "RevisionId": p.RevisionID})
	return nil
}

func (a *API) removePermission(w http.ResponseWriter, r *http.Request) error {
	name, q, err := a.target(r)
	if err != nil {
		return err
	}
	if err := a.reg.RemovePermission(r.Context(), name, q, r.PathValue("sid"), r.URL.Query().Get("RevisionId")); err != nil {
		return a.at(name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
