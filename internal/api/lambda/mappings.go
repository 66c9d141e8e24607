package lambda

import (
	"net/http"
	"strconv"

	"github.com/stratus-faas/stratus/internal/esm"
	"github.com/stratus-faas/stratus/internal/function"
)

func (a *API) registerMappings(mux *http.ServeMux) {
	const path = "/2015-03-31/event-source-mappings"
	mux.HandleFunc("POST "+path, a.h("CreateEventSourceMapping", a.createMapping))
	mux.HandleFunc("POST "+path+"/{$}", a.h("CreateEventSourceMapping", a.createMapping))
	mux.HandleFunc("GET "+path, a.h("ListEventSourceMappings", a.listMappings))
	mux.HandleFunc("GET "+path+"/{$}", a.h("ListEventSourceMappings", a.listMappings))
	mux.HandleFunc("GET "+path+"/{uuid}", a.h("GetEventSourceMapping", a.getMapping))
	mux.HandleFunc("PUT "+path+"/{uuid}", a.h("UpdateEventSourceMapping", a.updateMapping))
	mux.HandleFunc("DELETE "+path+"/{uuid}", a.h("DeleteEventSourceMapping", a.deleteMapping))
}

type scalingConfig struct {
	MaximumConcurrency *int `json:"MaximumConcurrency,omitempty"`
}

// mappingWire is both the request and the answer of the mapping
// operations (EventSourceMappingConfiguration).
type mappingWire struct {
	UUID                           string         `json:"UUID,omitempty"`
	EventSourceArn                 string         `json:"EventSourceArn,omitempty"`
	EventSourceMappingArn          string         `json:"EventSourceMappingArn,omitempty"`
	FunctionName                   string         `json:"FunctionName,omitempty"`
	FunctionArn                    string         `json:"FunctionArn,omitempty"`
	Enabled                        *bool          `json:"Enabled,omitempty"`
	BatchSize                      *int           `json:"BatchSize,omitempty"`
	MaximumBatchingWindowInSeconds *int           `json:"MaximumBatchingWindowInSeconds,omitempty"`
	FunctionResponseTypes          []string       `json:"FunctionResponseTypes"`
	ScalingConfig                  *scalingConfig `json:"ScalingConfig,omitempty"`
	LastModified                   float64        `json:"LastModified,omitempty"`
	LastProcessingResult           string         `json:"LastProcessingResult,omitempty"`
	State                          string         `json:"State,omitempty"`
	StateTransitionReason          string         `json:"StateTransitionReason,omitempty"`
}

func (a *API) mappingOut(m *esm.Mapping, state string) mappingWire {
	if state == "" {
		state = "Disabled"
		if m.Enabled {
			state = "Enabled"
		}
	}
	out := mappingWire{
		UUID:                           m.UUID,
		EventSourceArn:                 m.EventSourceArn,
		EventSourceMappingArn:          "arn:aws:lambda:" + a.opts.Region + ":" + function.AccountID + ":event-source-mapping:" + m.UUID,
		FunctionArn:                    function.ARN(a.opts.Region, m.Function, m.Qualifier),
		BatchSize:                      &m.BatchSize,
		MaximumBatchingWindowInSeconds: &m.Window,
		FunctionResponseTypes:          []string{},
		LastModified:                   float64(m.LastModified.UnixMilli()) / 1000,
		LastProcessingResult:           a.opts.Mappings.Result(m.UUID),
		State:                          state,
		StateTransitionReason:          "USER_INITIATED",
	}
	// An enabled mapping that cannot poll keeps retrying and says why.
	if p := a.opts.Mappings.Problem(m.UUID); p != "" && state == "Enabled" {
		out.StateTransitionReason = p
	}
	if m.ReportItemFailures {
		out.FunctionResponseTypes = []string{"ReportBatchItemFailures"}
	}
	if m.MaximumConcurrency > 0 {
		out.ScalingConfig = &scalingConfig{MaximumConcurrency: &m.MaximumConcurrency}
	}
	return out
}

func responseTypes(types []string) (bool, error) {
	report := false
	for _, t := range types {
		if t != "ReportBatchItemFailures" {
			return false, function.Invalidf("FunctionResponseTypes: unknown value %s (valid: ReportBatchItemFailures)", t)
		}
		report = true
	}
	return report, nil
}

func (a *API) createMapping(w http.ResponseWriter, r *http.Request) error {
	var in mappingWire
	if err := decode(r, &in, "CreateEventSourceMapping"); err != nil {
		return a.at("", err)
	}
	if in.FunctionName == "" || in.EventSourceArn == "" {
		return a.at("", function.Invalidf("FunctionName and EventSourceArn are required"))
	}
	name, q, err := function.ParseRef(in.FunctionName)
	if err != nil {
		return a.at(in.FunctionName, err)
	}
	m := esm.Mapping{EventSourceArn: in.EventSourceArn, Function: name, Qualifier: q, Enabled: true}
	setIf(&m.Enabled, in.Enabled)
	setIf(&m.BatchSize, in.BatchSize)
	setIf(&m.Window, in.MaximumBatchingWindowInSeconds)
	if in.ScalingConfig != nil {
		setIf(&m.MaximumConcurrency, in.ScalingConfig.MaximumConcurrency)
	}
	if m.ReportItemFailures, err = responseTypes(in.FunctionResponseTypes); err != nil {
		return a.at(in.FunctionName, err)
	}
	// The poller acts with the function's role, as Lambda's does.
	if fn, err := a.reg.Get(name); err == nil {
		if err := a.roleMay(fn.Role, in.EventSourceArn, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"); err != nil {
			return a.at(in.FunctionName, err)
		}
	}
	out, err := a.opts.Mappings.Create(r.Context(), m)
	if err != nil {
		return a.at(in.FunctionName, err)
	}
	writeJSON(w, http.StatusAccepted, a.mappingOut(out, "Creating"))
	return nil
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (a *API) getMapping(w http.ResponseWriter, r *http.Request) error {
	m, err := a.opts.Mappings.Get(r.PathValue("uuid"))
	if err != nil {
		return a.at("", err)
	}
	writeJSON(w, http.StatusOK, a.mappingOut(m, ""))
	return nil
}

func (a *API) listMappings(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	fn := ""
	if ref := q.Get("FunctionName"); ref != "" {
		name, _, err := function.ParseRef(ref)
		if err != nil {
			return a.at(ref, err)
		}
		fn = name
	}
	all := a.opts.Mappings.List(q.Get("EventSourceArn"), fn)
	start := 0
	if marker := q.Get("Marker"); marker != "" {
		for start < len(all) && all[start].UUID <= marker {
			start++
		}
	}
	limit := 100
	if s := q.Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return a.at("", function.Invalidf("MaxItems must be between 1 and 10000"))
		}
		limit = n
	}
	page := all[start:]
	out := struct {
		EventSourceMappings []mappingWire `json:"EventSourceMappings"`
		NextMarker          string        `json:"NextMarker,omitempty"`
	}{EventSourceMappings: []mappingWire{}}
	if len(page) > limit {
		page = page[:limit]
		out.NextMarker = page[len(page)-1].UUID
	}
	for _, m := range page {
		out.EventSourceMappings = append(out.EventSourceMappings, a.mappingOut(m, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) updateMapping(w http.ResponseWriter, r *http.Request) error {
	var in mappingWire
	if err := decode(r, &in, "UpdateEventSourceMapping"); err != nil {
		return a.at("", err)
	}
	p := esm.Patch{Enabled: in.Enabled, BatchSize: in.BatchSize, Window: in.MaximumBatchingWindowInSeconds}
	if in.FunctionName != "" {
		p.Function = &in.FunctionName
	}
	if in.ScalingConfig != nil {
		p.MaximumConcurrency = in.ScalingConfig.MaximumConcurrency
		if p.MaximumConcurrency == nil {
			zero := 0
			p.MaximumConcurrency = &zero
		}
	}
	if in.FunctionResponseTypes != nil {
		report, err := responseTypes(in.FunctionResponseTypes)
		if err != nil {
			return a.at("", err)
		}
		p.ReportItemFailures = &report
	}
	m, err := a.opts.Mappings.Update(r.Context(), r.PathValue("uuid"), p)
	if err != nil {
		return a.at(in.FunctionName, err)
	}
	writeJSON(w, http.StatusAccepted, a.mappingOut(m, "Updating"))
	return nil
}

func (a *API) deleteMapping(w http.ResponseWriter, r *http.Request) error {
	m, err := a.opts.Mappings.Delete(r.Context(), r.PathValue("uuid"))
	if err != nil {
		return a.at("", err)
	}
	writeJSON(w, http.StatusAccepted, a.mappingOut(m, "Deleting"))
	return nil
}
