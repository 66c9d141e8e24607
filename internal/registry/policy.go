package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// Errors of resource policies.
var (
	ErrNoPolicy     = errors.New("no resource policy")
	ErrNoStatement  = errors.New("no such statement")
	ErrStatementSid = errors.New("statement id exists")
)

// Policy returns the resource policy of a function (qualifier "") or of
// one version or alias, or nil; memory only (on the invocation path).
func (r *Registry) Policy(name, qualifier string) *function.ResourcePolicy {
	if e := r.entryOf(policyKey(name, qualifier)); e != nil {
		return e.pol
	}
	return nil
}

// CompiledPolicy is Policy ready to evaluate, or nil.
func (r *Registry) CompiledPolicy(name, qualifier string) *auth.Policy {
	if e := r.entryOf(policyKey(name, qualifier)); e != nil {
		return e.cpol
	}
	return nil
}

// AddPermission adds a statement to the policy of name:qualifier. A
// non-empty revision must match the policy's.
func (r *Registry) AddPermission(ctx context.Context, name, qualifier string, st function.Statement, revision string) (*function.ResourcePolicy, error) {
	return r.changePolicy(ctx, name, qualifier, revision, func(p *function.ResourcePolicy) error {
		if slices.ContainsFunc(p.Statements, func(s function.Statement) bool { return s.Sid == st.Sid }) {
			return function.Errorf(ErrStatementSid, "The statement id (%s) provided already exists. Please provide a new statement id, or remove the existing statement.", st.Sid)
		}
		p.Statements = append(p.Statements, st)
		return nil
	})
}

// RemovePermission takes a statement out; the policy goes with its last.
func (r *Registry) RemovePermission(ctx context.Context, name, qualifier, sid, revision string) error {
	_, err := r.changePolicy(ctx, name, qualifier, revision, func(p *function.ResourcePolicy) error {
		i := slices.IndexFunc(p.Statements, func(s function.Statement) bool { return s.Sid == sid })
		if i < 0 {
			return function.Errorf(ErrNoStatement, "Statement %s is not found in resource policy.", sid)
		}
		p.Statements = slices.Delete(p.Statements, i, i+1)
		return nil
	})
	return err
}

func (r *Registry) changePolicy(ctx context.Context, name, qualifier, revision string, change func(*function.ResourcePolicy) error) (*function.ResourcePolicy, error) {
	if _, err := r.Resolve(name, qualifier); err != nil {
		return nil, err
	}
	key := policyKey(name, qualifier)
	for {
		cur := r.entryOf(key)
		next := function.ResourcePolicy{Function: name, Qualifier: qualifier}
		if cur != nil {
			next = *cur.pol
			next.Statements = slices.Clone(cur.pol.Statements)
		}
		if revision != "" && revision != next.RevisionID {
			return nil, ErrPrecondition
		}
		if err := change(&next); err != nil {
			return nil, err
		}
		next.RevisionID = uuid.NewString()
		var rev uint64
		var err error
		switch {
		case len(next.Statements) == 0:
			err = r.st.Functions.Delete(ctx, key, jetstream.LastRevision(cur.rev))
			if err == nil {
				r.setEntry(key, &entry{rev: cur.rev + 1})
				return &next, nil
			}
		case cur == nil:
			data, _ := json.Marshal(&next)
			rev, err = r.st.Functions.Create(ctx, key, data)
		default:
			data, _ := json.Marshal(&next)
			rev, err = r.st.Functions.Update(ctx, key, data, cur.rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || store.WrongRevision(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store resource policy: %w", err)
		}
		r.setEntry(key, &entry{pol: &next, rev: rev})
		return &next, nil
	}
}
