package esm

import (
	"testing"

	"github.com/stratus-faas/stratus/internal/queue"
)

func TestItemFailures(t *testing.T) {
	msgs := []queue.Message{{MessageID: "a"}, {MessageID: "b"}}
	cases := []struct {
		payload string
		ok      bool
		failed  []string
	}{
		{``, true, nil},
		{`null`, true, nil},
		{`{}`, true, nil},
		{`{"batchItemFailures":null}`, true, nil},
		{`{"batchItemFailures":[]}`, true, nil},
		{`{"batchItemFailures":[{"itemIdentifier":"b"}]}`, true, []string{"b"}},
		{`{"batchItemFailures":[{"itemIdentifier":""}]}`, false, nil},
		{`{"batchItemFailures":[{"itemIdentifier":"zzz"}]}`, false, nil},
		{`{"batchItemFailures":[{"wrong":"a"}]}`, false, nil},
		{`{"batchItemFailures":"a"}`, false, nil},
		{`{not json`, false, nil},
		{`"done"`, true, nil},
	}
	for _, c := range cases {
		failed, ok := itemFailures([]byte(c.payload), msgs)
		if ok != c.ok || len(failed) != len(c.failed) {
			t.Errorf("%s: ok %v failed %v", c.payload, ok, failed)
			continue
		}
		for _, id := range c.failed {
			if !failed[id] {
				t.Errorf("%s: %s not failed", c.payload, id)
			}
		}
	}
}

func TestMappingValidate(t *testing.T) {
	cases := []struct {
		m  Mapping
		ok bool
	}{
		{Mapping{BatchSize: 10}, true},
		{Mapping{BatchSize: 0}, false},
		{Mapping{BatchSize: 10001, Window: 1}, false},
		{Mapping{BatchSize: 11}, false},
		{Mapping{BatchSize: 11, Window: 1}, true},
		{Mapping{BatchSize: 10, Window: 301}, false},
		{Mapping{BatchSize: 10, MaximumConcurrency: 1}, false},
		{Mapping{BatchSize: 10, MaximumConcurrency: 2}, true},
		{Mapping{BatchSize: 10, MaximumConcurrency: 1001}, false},
	}
	for _, c := range cases {
		if err := c.m.validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.m, err)
		}
	}
}
