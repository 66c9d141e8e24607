package lambda

import (
	"net/http"
	"time"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/registry"
)

func (a *API) registerEventConfig(mux *http.ServeMux) {
	const path = "/2019-09-25/functions/{name}/event-invoke-config"
	mux.HandleFunc("PUT "+path, a.h("PutFunctionEventInvokeConfig", func(w http.ResponseWriter, r *http.Request) error { return a.putEventConfig(w, r, false) }))
	mux.HandleFunc("POST "+path, a.h("UpdateFunctionEventInvokeConfig", func(w http.ResponseWriter, r *http.Request) error { return a.putEventConfig(w, r, true) }))
	mux.HandleFunc("GET "+path, a.h("GetFunctionEventInvokeConfig", a.getEventConfig))
	mux.HandleFunc("DELETE "+path, a.h("DeleteFunctionEventInvokeConfig", a.deleteEventConfig))
	mux.HandleFunc("GET "+path+"/list", a.h("ListFunctionEventInvokeConfigs", a.listEventConfigs))
}

type destination struct {
	Destination string `json:"Destination,omitempty"`
}

type eventConfigWire struct {
	FunctionArn              string  `json:"FunctionArn,omitempty"`
	LastModified             float64 `json:"LastModified,omitempty"` // epoch seconds, as the API's timestamps
	MaximumRetryAttempts     *int    `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int    `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        *struct {
		OnSuccess *destination `json:"OnSuccess,omitempty"`
		OnFailure *destination `json:"OnFailure,omitempty"`
	} `json:"DestinationConfig,omitempty"`
}

func (a *API) eventConfigOut(c *function.EventInvokeConfig) eventConfigWire {
	out := eventConfigWire{
		FunctionArn:              function.ARN(a.opts.Region, c.Function, function.Latest),
		LastModified:             float64(c.LastModified.UnixMilli()) / 1000,
		MaximumRetryAttempts:     c.MaximumRetryAttempts,
		MaximumEventAgeInSeconds: c.MaximumEventAge,
	}
	out.DestinationConfig = &struct {
		OnSuccess *destination `json:"OnSuccess,omitempty"`
		OnFailure *destination `json:"OnFailure,omitempty"`
	}{OnSuccess: &destination{c.OnSuccess}, OnFailure: &destination{c.OnFailure}}
	return out
}

func (a *API) putEventConfig(w http.ResponseWriter, r *http.Request, merge bool) error {
	ref := r.PathValue("name")
	var in eventConfigWire
	name, err := named(r, &in, "PutFunctionEventInvokeConfig")
	if err != nil {
		return a.at(ref, err)
	}
	c := function.EventInvokeConfig{Function: name, MaximumRetryAttempts: in.MaximumRetryAttempts, MaximumEventAge: in.MaximumEventAgeInSeconds, LastModified: time.Now()}
	if d := in.DestinationConfig; d != nil {
		if d.OnSuccess != nil {
			c.OnSuccess = d.OnSuccess.Destination
		}
		if d.OnFailure != nil {
			c.OnFailure = d.OnFailure.Destination
		}
	}
	if fn, err := a.reg.Get(name); err == nil {
		for _, d := range []string{c.OnSuccess, c.OnFailure} {
			if d == "" {
				continue
			}
			if err := a.roleMay(fn.Role, d, deliveryActions(d)...); err != nil {
				return a.at(ref, err)
			}
		}
	}
	out, err := a.reg.PutEventConfig(r.Context(), c, merge)
	if err != nil {
		return a.at(ref, err)
	}
	writeJSON(w, http.StatusOK, a.eventConfigOut(out))
	return nil
}

func (a *API) getEventConfig(w http.ResponseWriter, r *http.Request) error {
	name, err := a.existingFunction(r)
	if err != nil {
		return err
	}
	c := a.reg.EventConfig(name)
	if c == nil {
		return a.at(r.PathValue("name"), registry.ErrNoEventConfig)
	}
	writeJSON(w, http.StatusOK, a.eventConfigOut(c))
	return nil
}

func (a *API) deleteEventConfig(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("name")
	name, err := bareName(ref)
	if err == nil {
		err = a.reg.DeleteEventConfig(r.Context(), name)
	}
	if err != nil {
		return a.at(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listEventConfigs(w http.ResponseWriter, r *http.Request) error {
	name, err := a.existingFunction(r)
	if err != nil {
		return err
	}
	out := struct {
		Configs []eventConfigWire `json:"FunctionEventInvokeConfigs"`
	}{Configs: []eventConfigWire{}}
	if c := a.reg.EventConfig(name); c != nil {
		out.Configs = append(out.Configs, a.eventConfigOut(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
