package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/store"
)

// Query selects events of one function's log.
type Query struct {
	Function string
	Streams  []string // stream names; empty: all
	// StartSeq resumes where a page ended (a token's); else Start.
	StartSeq   uint64
	StartIndex int
	Start, End time.Time // zero: unbounded
	RequestID  string
	Level      Level // lowest level kept; lines stating none count as INFO
	Match      func(Event) bool
	Follow     bool
}

// errStop ends a read early.
var errStop = errors.New("stop")

// Read delivers the events of q in the order they were stored, until fn
// returns ErrEnough (or another error, which Read returns), the end of q's
// time range, or (without Follow) the end of what is stored.
func Read(ctx context.Context, st *store.Store, q Query, fn func(Event) error) error {
	start := q.Start
	if keep := Retention(st, q.Function); keep > 0 {
		if cut := time.Now().Add(-keep); start.Before(cut) {
			start = cut
		}
	}
	subjects := Subjects(q.Function)
	if len(q.Streams) > 0 {
		subjects = subjects[:0:0]
		for _, s := range q.Streams {
			subjects = append(subjects, SubjectPrefix+q.Function+"."+StreamToken(s))
		}
	}
	// Lines are stored up to a flush after they were written: start a
	// little early and filter by each line's own time.
	since := time.Time{}
	if !start.IsZero() {
		since = start.Add(-time.Second)
	}
	err := st.Read(ctx, store.LogsStream, store.ReadOptions{Subjects: subjects, StartSeq: q.StartSeq, Since: since, Follow: q.Follow}, func(m jetstream.Msg) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		if !q.End.IsZero() && md.Timestamp.After(q.End.Add(time.Minute)) {
			return errStop
		}
		for _, ev := range Decode(m.Subject(), m.Headers(), m.Data(), md.Timestamp, md.Sequence.Stream) {
			if ev.Stream == "" {
				ev.Stream = "legacy"
			}
			if md.Sequence.Stream == q.StartSeq && ev.Index < q.StartIndex {
				continue
			}
			if !start.IsZero() && ev.Time.Before(start) || !q.End.IsZero() && !ev.Time.Before(q.End) {
				continue
			}
			if q.RequestID != "" && ev.RequestID != q.RequestID {
				continue
			}
			if q.Level > 0 {
				l := LevelOf([]byte(ev.Message))
				if l == 0 {
					l = Info
				}
				if l < q.Level {
					continue
				}
			}
			if q.Match != nil && !q.Match(ev) {
				continue
			}
			if err := fn(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errStop) || errors.Is(err, ErrEnough) {
		return nil
	}
	return err
}

// ErrEnough, returned by a Read callback, ends the read without error.
var ErrEnough = errors.New("enough")

// StreamInfo describes one log stream.
type StreamInfo struct {
	Name        string
	Events      uint64 // stored messages (batches of lines)
	First, Last time.Time
}

// Streams lists a function's log streams by name; with times, it also
// reads each one's first and last event times (two reads per stream).
func Streams(ctx context.Context, st *store.Store, fn string, times bool) ([]StreamInfo, error) {
	info, err := st.Logs.Info(ctx, jetstream.WithSubjectFilter(Subject(fn)))
	if err != nil {
		return nil, fmt.Errorf("log streams of %s: %w", fn, err)
	}
	out := make([]StreamInfo, 0, len(info.State.Subjects))
	prefix := SubjectPrefix + fn + "."
	for subj, n := range info.State.Subjects {
		out = append(out, StreamInfo{Name: StreamName(strings.TrimPrefix(subj, prefix)), Events: n})
	}
	slices.SortFunc(out, func(a, b StreamInfo) int { return strings.Compare(a.Name, b.Name) })
	if times {
		for i := range out {
			if err := StreamTimes(ctx, st, fn, &out[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// StreamTimes fills in a stream's first and last event times.
func StreamTimes(ctx context.Context, st *store.Store, fn string, s *StreamInfo) error {
	subj := SubjectPrefix + fn + "." + StreamToken(s.Name)
	last, err := st.Logs.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return fmt.Errorf("log stream %s: %w", s.Name, err)
	}
	first, err := st.Logs.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if err != nil {
		return fmt.Errorf("log stream %s: %w", s.Name, err)
	}
	if evs := Decode(first.Subject, first.Header, first.Data, first.Time, first.Sequence); len(evs) > 0 {
		s.First = evs[0].Time
	}
	if evs := Decode(last.Subject, last.Header, last.Data, last.Time, last.Sequence); len(evs) > 0 {
		s.Last = evs[len(evs)-1].Time
	}
	return nil
}

// GroupSettings are a log group's stored settings.
type GroupSettings struct {
	RetentionDays int `json:"retentionInDays,omitempty"`
}

// Retention is how long a function's log group keeps events; 0: as long
// as the store keeps logs.
func Retention(st *store.Store, fn string) time.Duration {
	g := Group(st, fn)
	return time.Duration(g.RetentionDays) * 24 * time.Hour
}

// Group reads a log group's settings.
func Group(st *store.Store, fn string) GroupSettings {
	var g GroupSettings
	if e, err := st.LogGroups.Get(context.Background(), fn); err == nil {
		_ = json.Unmarshal(e.Value(), &g)
	}
	return g
}

// SetGroup stores a log group's settings.
func SetGroup(ctx context.Context, st *store.Store, fn string, g GroupSettings) error {
	if g == (GroupSettings{}) {
		if err := st.LogGroups.Delete(ctx, fn); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("log group %s: %w", fn, err)
		}
		return nil
	}
	b, _ := json.Marshal(g)
	if _, err := st.LogGroups.Put(ctx, fn, b); err != nil {
		return fmt.Errorf("log group %s: %w", fn, err)
	}
	return nil
}

// Expire removes the events of a function older than its retention; a
// node's sweeper calls it now and then (readers skip them meanwhile).
func Expire(ctx context.Context, st *store.Store, fn string) error {
	keep := Retention(st, fn)
	if keep <= 0 {
		return nil
	}
	cut := time.Now().Add(-keep)
	// The first message stored after the cut: everything before it goes.
	var first uint64
	err := st.Read(ctx, store.LogsStream, store.ReadOptions{Subjects: Subjects(fn), Since: cut}, func(m jetstream.Msg) error {
		if md, err := m.Metadata(); err == nil {
			first = md.Sequence.Stream
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	for _, subj := range Subjects(fn) {
		opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(subj)}
		if first > 0 {
			opts = append(opts, jetstream.WithPurgeSequence(first))
		}
		if err := st.Logs.Purge(ctx, opts...); err != nil {
			return fmt.Errorf("expire logs of %s: %w", fn, err)
		}
	}
	return nil
}
