package stratusapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/stratus-faas/stratus/internal/cluster"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/meter"
	"github.com/stratus-faas/stratus/internal/store"
)

// ScheduleStatus is a schedule as the dashboard lists it.
type ScheduleStatus struct {
	Name       string    `json:"name"`
	Group      string    `json:"group"`
	Expression string    `json:"expression"`
	State      string    `json:"state"`
	Target     string    `json:"target"`
	NextRun    time.Time `json:"nextRun,omitzero"`
}

// NodeStatus is this node and its store, as the dashboard shows them.
type NodeStatus struct {
	Version        string    `json:"version"`
	Started        time.Time `json:"started"`
	Store          string    `json:"store"` // embedded NATS, or the URL
	StoreUp        bool      `json:"storeUp"`
	StoreWritable  bool      `json:"storeWritable"`
	StoreProblem   string    `json:"storeProblem,omitempty"`
	StoreUsed      int64     `json:"storeUsedBytes"`
	StoreMax       int64     `json:"storeMaxBytes"`
	DiskFree       int64     `json:"diskFreeBytes"` // -1: not known (external store)
	Instances      int64     `json:"instances"`
	InFlight       int64     `json:"inFlight"`
	MaxConcurrency int       `json:"maxConcurrency"`
	Functions      int       `json:"functions"`
	// Prewarmed are the sandboxes ready for cold starts, by runtime, with
	// their processes' ids on this host.
	Prewarmed map[string][]int `json:"prewarmed,omitempty"`
	// Node is this node's name; Nodes every live node of its cluster
	// (this one alone when it has none) and Replication the copies the
	// store keeps of each stream and bucket.
	Node        string               `json:"node"`
	Nodes       []ClusterNode        `json:"nodes"`
	Replication []store.StreamHealth `json:"replication,omitempty"`
}

// ClusterNode is one node of the cluster as it last said.
type ClusterNode struct {
	cluster.Node
	Self bool `json:"self,omitempty"`
}

// WithDashboard gives the endpoints the dashboard reads beside the APIs:
// schedules with their next run, and this node's status.
func (a *API) WithDashboard(schedules func() []ScheduleStatus, node func(context.Context) NodeStatus) *API {
	a.schedules, a.node = schedules, node
	return a
}

func (a *API) registerDashboard(mux *http.ServeMux) {
	mux.HandleFunc("GET /stratus/v1/schedules", a.allow("stratus:GetScheduleStatus", nil, func(w http.ResponseWriter, r *http.Request) {
		out := struct {
			Schedules []ScheduleStatus `json:"schedules"`
		}{Schedules: []ScheduleStatus{}}
		if a.schedules != nil {
			out.Schedules = append(out.Schedules, a.schedules()...)
		}
		writeOut(w, out)
	}))
	mux.HandleFunc("GET /stratus/v1/node", a.allow("stratus:GetNodeStatus", nil, func(w http.ResponseWriter, r *http.Request) {
		var out NodeStatus
		if a.node != nil {
			out = a.node(r.Context())
		}
		writeOut(w, out)
	}))
	mux.HandleFunc("GET /stratus/v1/functions/{name}/invocations", a.allow("stratus:GetUsage", nil, func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := function.ValidateName(name); err != nil {
			fail(w, http.StatusBadRequest, "InvalidParameterValueException", "invalid function name")
			return
		}
		recs, err := meter.Recent(r.Context(), a.st, name, a.now().Add(-time.Hour), 50)
		if err != nil {
			fail(w, http.StatusInternalServerError, "ServiceException", err.Error())
			return
		}
		if recs == nil {
			recs = []meter.Record{}
		}
		writeOut(w, struct {
			Invocations []meter.Record `json:"invocations"`
		}{recs})
	}))
}

func writeOut(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
