package pool

import (
	"context"
	"time"
)

// Multi-concurrency execution environments (Lambda Managed Instances'
// model): each instance takes up to PerEnvironment invocations at once.
// An invocation goes to the least-loaded live instance with room; when
// every instance is full it waits for one being started that has room
// left, and only when none has does it start another, so a burst starts
// no more instances than its requests need. An instance that timed out
// or was cancelled mid-invocation takes no new work and is torn down
// once its other invocations end.

// start is an instance being started, and the invocations waiting for it.
type start struct {
	done     chan struct{}
	inst     *Instance
	err      error
	reserved int // invocations that will run on it, the starter included
}

// envBillEvery bounds how long a busy environment's time goes unbilled.
const envBillEvery = 10 * time.Second

// acquireShared is Acquire for multi-concurrency pools.
func (p *Pool) acquireShared(ctx context.Context) (*Instance, bool, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, ErrClosed
		}
		var best *Instance
		for _, inst := range p.envs {
			if !inst.draining && inst.inflight < p.perEnv && (best == nil || inst.inflight < best.inflight) {
				best = inst
			}
		}
		if best != nil {
			if !best.Alive() {
				// Dead while idle: nobody will release it, so it goes now.
				// With invocations in flight, the last of them takes it.
				best.draining = true
				p.retireLocked(best)
				idle := best.inflight == 0
				p.mu.Unlock()
				if idle {
					p.dropEnv(best)
				}
				continue
			}
			best.inflight++
			p.mu.Unlock()
			return best, false, nil
		}
		for _, st := range p.starts {
			if st.reserved < p.perEnv {
				st.reserved++
				p.mu.Unlock()
				return p.await(ctx, st)
			}
		}
		if p.spec.ScaleLimit != nil && !p.spec.ScaleLimit() {
			p.mu.Unlock()
			return nil, false, ErrScaleLimit
		}
		st := &start{done: make(chan struct{}), reserved: 1}
		p.starts = append(p.starts, st)
		p.total++
		p.mu.Unlock()
		inst, err := p.startInstance(ctx, false)
		p.mu.Lock()
		p.removeStart(st)
		if err != nil {
			p.total--
			st.err = err
		} else {
			inst.inflight = st.reserved
			inst.billedAt = p.deps.Clock.Now()
			st.inst = inst
			p.envs = append(p.envs, inst)
			p.deps.Live.Add(1)
			if p.closed {
				inst.draining = true
			}
		}
		close(st.done)
		p.mu.Unlock()
		return inst, true, err
	}
}

// await waits for an instance being started that has a place reserved.
func (p *Pool) await(ctx context.Context, st *start) (*Instance, bool, error) {
	select {
	case <-st.done:
		if st.err != nil {
			return nil, false, st.err
		}
		return st.inst, false, nil
	case <-ctx.Done():
		p.mu.Lock()
		select {
		case <-st.done:
			// Started after all: the place taken on it is given back.
			p.mu.Unlock()
			if st.err == nil {
				p.releaseShared(st.inst)
			}
		default:
			st.reserved--
			p.mu.Unlock()
		}
		return nil, false, ctx.Err()
	}
}

func (p *Pool) removeStart(st *start) {
	for i, s := range p.starts {
		if s == st {
			p.starts = append(p.starts[:i], p.starts[i+1:]...)
			return
		}
	}
}

// releaseShared ends one invocation on a multi-concurrency instance.
func (p *Pool) releaseShared(inst *Instance) {
	now := p.deps.Clock.Now()
	p.mu.Lock()
	inst.inflight--
	inst.lastUsed = now
	if p.closed || !inst.Alive() || inst.retired(now) {
		inst.draining = true
	}
	var bill time.Duration
	if now.Sub(inst.billedAt) >= envBillEvery {
		bill, inst.billedAt = now.Sub(inst.billedAt), now
	}
	drop := inst.draining && inst.inflight == 0
	if drop {
		p.retireLocked(inst)
	} else if inst.inflight == 0 && p.reaper == nil {
		p.reaper = p.deps.Clock.AfterFunc(p.spec.IdleTimeout, p.reapShared)
	}
	p.mu.Unlock()
	if bill > 0 {
		p.billEnv(bill)
	}
	if drop {
		p.dropEnv(inst)
	}
}

// discardShared: inst must take no more invocations; it goes once the
// ones it runs have ended.
func (p *Pool) discardShared(inst *Instance) {
	p.mu.Lock()
	inst.draining = true
	p.mu.Unlock()
	p.releaseShared(inst)
}

// retireLocked takes inst out of the pool's list; called with mu held.
func (p *Pool) retireLocked(inst *Instance) {
	for i, e := range p.envs {
		if e == inst {
			p.envs = append(p.envs[:i], p.envs[i+1:]...)
			return
		}
	}
}

// dropEnv tears down a retired environment and bills its unbilled time.
func (p *Pool) dropEnv(inst *Instance) {
	p.mu.Lock()
	d := p.deps.Clock.Now().Sub(inst.billedAt)
	p.mu.Unlock()
	p.billEnv(d)
	p.drop(inst)
}

func (p *Pool) billEnv(d time.Duration) {
	if p.deps.BillEnvironment != nil && d > 0 {
		p.deps.BillEnvironment(p.spec, d)
	}
}

// reapShared tears down environments idle (no invocation) for the idle
// timeout and arms the timer for the next one due.
func (p *Pool) reapShared() {
	now := p.deps.Clock.Now()
	var expired []*Instance
	var next time.Duration
	p.mu.Lock()
	p.reaper = nil
	keep := p.envs[:0]
	for _, inst := range p.envs {
		switch {
		case inst.inflight > 0:
			keep = append(keep, inst)
		case now.Sub(inst.lastUsed) >= p.spec.IdleTimeout:
			expired = append(expired, inst)
		default:
			keep = append(keep, inst)
			if d := inst.lastUsed.Add(p.spec.IdleTimeout).Sub(now); next == 0 || d < next {
				next = d
			}
		}
	}
	p.envs = keep
	if next > 0 && !p.closed {
		p.reaper = p.deps.Clock.AfterFunc(next, p.reapShared)
	}
	p.mu.Unlock()
	for _, inst := range expired {
		p.dropEnv(inst)
	}
}

// closeShared retires a multi-concurrency pool: idle environments go now,
// busy ones when their last invocation ends.
func (p *Pool) closeShared() []*Instance {
	var idle []*Instance
	keep := p.envs[:0]
	for _, inst := range p.envs {
		inst.draining = true
		if inst.inflight == 0 {
			idle = append(idle, inst)
		} else {
			keep = append(keep, inst)
		}
	}
	p.envs = keep
	return idle
}
