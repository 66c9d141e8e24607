package stratusapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/stratus-faas/stratus/internal/queue"
)

// Queues adds GET /stratus/v1/queues: each queue's depth, in flight,
// delayed and oldest age (from the store, the same on every node), this
// node's counters, and the asynchronous event queue.
func (a *API) Queues(mux *http.ServeMux, q *queue.Manager, async func(context.Context) (any, error)) {
	mux.HandleFunc("GET /stratus/v1/queues", a.allow("stratus:GetQueueStats", nil, func(w http.ResponseWriter, r *http.Request) {
		type row struct {
			Name      string             `json:"name"`
			Visible   int64              `json:"visible"`
			InFlight  int64              `json:"inFlight"`
			Delayed   int64              `json:"delayed"`
			OldestAge float64            `json:"oldestAgeSeconds"`
			Counts    map[string]float64 `json:"counts"`
		}
		out := struct {
			Queues []row `json:"queues"`
			Async  any   `json:"async"`
		}{Queues: []row{}}
		for _, name := range q.List("") {
			st, err := q.Stats(r.Context(), name)
			if err != nil {
				continue // deleted meanwhile
			}
			out.Queues = append(out.Queues, row{Name: name, Visible: st.Visible, InFlight: st.InFlight, Delayed: st.Delayed,
				OldestAge: st.OldestAge.Seconds(), Counts: q.Counts(name)})
		}
		var err error
		if out.Async, err = async(r.Context()); err != nil {
			fail(w, http.StatusInternalServerError, "ServiceException", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
}
