package pool

import (
	"errors"
	"time"

	"github.com/stratus-faas/stratus/internal/outcome"
)

// Provisioned concurrency: instances started ahead of any request, kept
// through idle periods, replaced when they die, and handed out before
// on-demand ones.

// ProvisionedStatus is the state of a pool's provisioned instances.
type ProvisionedStatus struct {
	Requested int
	Ready     int
	Failed    string // the last start failure, while not all are ready
}

// SetProvisioned sets how many provisioned instances the pool keeps.
func (p *Pool) SetProvisioned(n int) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.provTarget = n
	p.provFailed = ""
	// Surplus idle provisioned instances go now; busy ones when released.
	var surplus []*Instance
	for p.provLive > n && len(p.provIdle) > 0 {
		last := len(p.provIdle) - 1
		surplus = append(surplus, p.provIdle[last])
		p.provIdle = p.provIdle[:last]
		p.provLive--
	}
	p.mu.Unlock()
	for _, inst := range surplus {
		p.drop(inst)
	}
	p.billProvisioned()
	p.fill()
}

// fill starts provisioned instances until the target is met.
func (p *Pool) fill() {
	p.mu.Lock()
	missing := p.provTarget - p.provLive - p.provStarting
	if p.closed || missing <= 0 {
		p.mu.Unlock()
		return
	}
	p.provStarting += missing
	p.total += missing
	p.mu.Unlock()
	for range missing {
		p.bg.Go(p.provision)
	}
}

func (p *Pool) provision() {
	inst, err := p.startInstance(p.ctx, true)
	p.mu.Lock()
	p.provStarting--
	if err != nil {
		p.total--
		p.provFailed = err.Error()
		if ie, ok := errors.AsType[*InitError](err); ok {
			p.provFailed = "FUNCTION_ERROR_INIT_FAILURE: " + outcome.ParseDoc(ie.Result.Payload).Summary()
		}
		p.mu.Unlock()
		return // no retry loop: a function that cannot start would spin
	}
	if p.closed || p.provLive >= p.provTarget {
		p.mu.Unlock()
		p.deps.Live.Add(1)
		p.drop(inst)
		return
	}
	p.provLive++
	p.provIdle = append(p.provIdle, inst)
	p.mu.Unlock()
	p.deps.Live.Add(1)
	// Replace it if it dies, even while idle.
	p.bg.Go(func() {
		select {
		case <-inst.proc.Done():
			p.provisionedDied(inst)
		case <-p.ctx.Done():
		}
	})
}

// provisionedDied removes a dead provisioned instance from the idle stack
// (if it is there) and starts a replacement.
func (p *Pool) provisionedDied(inst *Instance) {
	p.mu.Lock()
	for i, x := range p.provIdle {
		if x == inst {
			p.provIdle = append(p.provIdle[:i], p.provIdle[i+1:]...)
			p.provLive--
			p.mu.Unlock()
			p.drop(inst)
			p.fill()
			return
		}
	}
	p.mu.Unlock()
	// Busy: Discard or Release tears it down and refills.
}

// Provisioned reports the provisioned instances.
func (p *Pool) Provisioned() ProvisionedStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := ProvisionedStatus{Requested: p.provTarget, Ready: p.provLive}
	if st.Ready < st.Requested {
		st.Failed = p.provFailed
	}
	return st
}

// billProvisioned reports the provisioned time since the last report, and
// schedules the next report while instances are provisioned.
func (p *Pool) billProvisioned() {
	now := p.deps.Clock.Now()
	p.mu.Lock()
	n, since := p.provBilledN, p.provBilledAt
	p.provBilledN, p.provBilledAt = p.provTarget, now
	if p.provTimer != nil {
		p.provTimer.Stop()
		p.provTimer = nil
	}
	if p.provTarget > 0 && !p.closed {
		p.provTimer = p.deps.Clock.AfterFunc(time.Minute, p.billProvisioned)
	}
	p.mu.Unlock()
	if n > 0 && p.deps.Bill != nil {
		p.deps.Bill(p.spec, n, now.Sub(since))
	}
}
