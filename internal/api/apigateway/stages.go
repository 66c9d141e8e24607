package apigateway

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/httpapi"
)

func (a *API) registerStages(mux *http.ServeMux) {
	mux.HandleFunc("POST /v2/apis/{api}/stages", a.h(a.createStage))
	mux.HandleFunc("GET /v2/apis/{api}/stages", a.h(a.getStages))
	mux.HandleFunc("GET /v2/apis/{api}/stages/{id}", a.h(a.getStage))
	mux.HandleFunc("PATCH /v2/apis/{api}/stages/{id}", a.h(a.updateStage))
	mux.HandleFunc("DELETE /v2/apis/{api}/stages/{id}", a.h(a.deleteStage))
	mux.HandleFunc("POST /v2/apis/{api}/deployments", a.h(a.createDeployment))
	mux.HandleFunc("GET /v2/apis/{api}/deployments", a.h(a.getDeployments))
	mux.HandleFunc("GET /v2/apis/{api}/deployments/{id}", a.h(a.getDeployment))
	mux.HandleFunc("PATCH /v2/apis/{api}/deployments/{id}", a.h(a.updateDeployment))
	mux.HandleFunc("DELETE /v2/apis/{api}/deployments/{id}", a.h(a.deleteDeployment))
}

// stageInput is what CreateStage and UpdateStage take. Settings Stratus
// has no part for (access logs, throttling per route, client
// certificates) are refused by name rather than dropped.
type stageInput struct {
	StageName      *string           `json:"stageName"`
	AutoDeploy     *bool             `json:"autoDeploy"`
	DeploymentID   *string           `json:"deploymentId"`
	Description    *string           `json:"description"`
	StageVariables map[string]string `json:"stageVariables"`
	Tags           map[string]string `json:"tags"`
	// Accepted when empty, as SDKs and Terraform send them.
	DefaultRouteSettings map[string]any `json:"defaultRouteSettings"`
	RouteSettings        map[string]any `json:"routeSettings"`
}

func decodeStage(r *http.Request) (*stageInput, error) {
	var raw map[string]json.RawMessage
	if err := decode(r, &raw); err != nil {
		return nil, err
	}
	known := []string{"stageName", "autoDeploy", "deploymentId", "description", "stageVariables", "tags", "defaultRouteSettings", "routeSettings"}
	for k := range raw {
		if !slices.Contains(known, k) {
			return nil, function.Errorf(httpapi.ErrInvalid, "Stratus does not support the stage setting %s", k)
		}
	}
	b, _ := json.Marshal(raw)
	var in stageInput
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, function.Errorf(httpapi.ErrInvalid, "Invalid request body: %v", err)
	}
	if len(in.DefaultRouteSettings) > 0 || len(in.RouteSettings) > 0 {
		return nil, function.Errorf(httpapi.ErrInvalid, "Stratus does not support route settings (throttling, detailed metrics) on stages")
	}
	return &in, nil
}

func stageOut(s *httpapi.Stage) map[string]any {
	updated := s.Updated
	if updated.IsZero() {
		updated = s.Created
	}
	out := map[string]any{
		"stageName":            s.Name,
		"autoDeploy":           s.AutoDeploy,
		"createdDate":          s.Created.UTC().Format(timeFormat),
		"lastUpdatedDate":      updated.UTC().Format(timeFormat),
		"defaultRouteSettings": map[string]any{},
		"routeSettings":        map[string]any{},
		"stageVariables":       s.Variables,
		"tags":                 map[string]string{},
	}
	if s.Variables == nil {
		out["stageVariables"] = map[string]string{}
	}
	if s.DeploymentID != "" {
		out["deploymentId"] = s.DeploymentID
	}
	if s.Description != "" {
		out["description"] = s.Description
	}
	return out
}

func (a *API) createStage(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeStage(r)
	if err != nil {
		return err
	}
	if in.StageName == nil {
		return function.Errorf(httpapi.ErrInvalid, "stageName is required")
	}
	now := time.Now().UTC()
	st := &httpapi.Stage{Name: *in.StageName, Created: now, Updated: now, Variables: in.StageVariables}
	if in.AutoDeploy != nil {
		st.AutoDeploy = *in.AutoDeploy
	}
	if in.Description != nil {
		st.Description = *in.Description
	}
	if err := httpapi.ValidateStage(st); err != nil {
		return err
	}
	api, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		if api.Stages[st.Name] != nil {
			return function.Errorf(httpapi.ErrConflict, "Stage already exists")
		}
		if in.DeploymentID != nil && *in.DeploymentID != "" {
			if api.Deployments[*in.DeploymentID] == nil {
				return function.Errorf(httpapi.ErrNotFound, "Invalid deployment identifier specified")
			}
			st.DeploymentID = *in.DeploymentID
		}
		api.Stages[st.Name] = st
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, stageOut(api.Stages[st.Name]))
	return nil
}

func (a *API) updateStage(w http.ResponseWriter, r *http.Request) error {
	in, err := decodeStage(r)
	if err != nil {
		return err
	}
	name := r.PathValue("id")
	api, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		st := api.Stages[name]
		if st == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid stage identifier specified")
		}
		if in.AutoDeploy != nil {
			st.AutoDeploy = *in.AutoDeploy
		}
		if in.Description != nil {
			st.Description = *in.Description
		}
		if in.DeploymentID != nil {
			if api.Deployments[*in.DeploymentID] == nil {
				return function.Errorf(httpapi.ErrNotFound, "Invalid deployment identifier specified")
			}
			st.DeploymentID = *in.DeploymentID
		}
		// The variables given are set; one set to "" is removed.
		for k, v := range in.StageVariables {
			if st.Variables == nil {
				st.Variables = map[string]string{}
			}
			if v == "" {
				delete(st.Variables, k)
			} else {
				st.Variables[k] = v
			}
		}
		st.Updated = time.Now().UTC()
		return httpapi.ValidateStage(st)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, stageOut(api.Stages[name]))
	return nil
}

func (a *API) getStages(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	items := []map[string]any{}
	for _, name := range sortedKeys(api.Stages) {
		items = append(items, stageOut(api.Stages[name]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

func (a *API) getStage(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	st := api.Stages[r.PathValue("id")]
	if st == nil {
		return function.Errorf(httpapi.ErrNotFound, "Invalid stage identifier specified")
	}
	writeJSON(w, http.StatusOK, stageOut(st))
	return nil
}

func (a *API) deleteStage(w http.ResponseWriter, r *http.Request) error {
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		if api.Stages[r.PathValue("id")] == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid stage identifier specified")
		}
		delete(api.Stages, r.PathValue("id"))
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func deploymentOut(d *httpapi.Deployment) map[string]any {
	return map[string]any{
		"deploymentId":     d.ID,
		"deploymentStatus": "DEPLOYED",
		"description":      d.Description,
		"createdDate":      d.Created.UTC().Format(timeFormat),
		"autoDeployed":     d.AutoDeployed,
	}
}

// createDeployment snapshots the API's routes and integrations; with a
// stageName, that stage serves it from now on.
func (a *API) createDeployment(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Description string `json:"description"`
		StageName   string `json:"stageName"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	var d *httpapi.Deployment
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		var st *httpapi.Stage
		if in.StageName != "" {
			if st = api.Stages[in.StageName]; st == nil {
				return function.Errorf(httpapi.ErrNotFound, "Invalid stage identifier specified")
			}
			if st.AutoDeploy {
				return function.Errorf(httpapi.ErrInvalid, "Stage %s has autoDeploy on: it is deployed with every change", in.StageName)
			}
		}
		d = api.Deploy(in.Description, false, time.Now().UTC())
		if st != nil {
			st.DeploymentID, st.Updated = d.ID, d.Created
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, deploymentOut(d))
	return nil
}

func (a *API) getDeployments(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	ds := slices.SortedFunc(maps.Values(api.Deployments), func(x, y *httpapi.Deployment) int { return x.Created.Compare(y.Created) })
	items := []map[string]any{}
	for _, d := range ds {
		items = append(items, deploymentOut(d))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

func (a *API) getDeployment(w http.ResponseWriter, r *http.Request) error {
	api, err := a.store.Get(r.PathValue("api"))
	if err != nil {
		return err
	}
	d := api.Deployments[r.PathValue("id")]
	if d == nil {
		return function.Errorf(httpapi.ErrNotFound, "Invalid deployment identifier specified")
	}
	writeJSON(w, http.StatusOK, deploymentOut(d))
	return nil
}

func (a *API) updateDeployment(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Description *string `json:"description"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	id := r.PathValue("id")
	api, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		d := api.Deployments[id]
		if d == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid deployment identifier specified")
		}
		if in.Description != nil {
			d.Description = *in.Description
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deploymentOut(api.Deployments[id]))
	return nil
}

func (a *API) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	_, err := a.store.Update(r.Context(), r.PathValue("api"), func(api *httpapi.API) error {
		if api.Deployments[id] == nil {
			return function.Errorf(httpapi.ErrNotFound, "Invalid deployment identifier specified")
		}
		for _, st := range api.Stages {
			if st.DeploymentID == id {
				return function.Errorf(httpapi.ErrInvalid, "Active stages pointing to this deployment must be moved or deleted (stage %s)", st.Name)
			}
		}
		delete(api.Deployments, id)
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
