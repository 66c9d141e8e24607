package function

import (
	"strconv"
	"strings"
)

// TagMaxConcurrency asks for multi-concurrency execution environments
// where a client cannot send CapacityProviderConfig: the tag's value is
// PerExecutionEnvironmentMaxConcurrency.
const TagMaxConcurrency = "stratus:max-concurrency"

// MaxPerEnvironment bounds PerExecutionEnvironmentMaxConcurrency: one
// environment never takes more than the default account concurrency.
const MaxPerEnvironment = 1000

// CapacityProvider is a function's CapacityProviderConfig
// (LambdaManagedInstancesCapacityProviderConfig). Stratus has no fleet of
// instances to choose from: the ARN is kept and shown, and the settings
// shape the function's execution environments.
type CapacityProvider struct {
	ARN string `json:"arn"`
	// MaxConcurrency is PerExecutionEnvironmentMaxConcurrency; 0: the
	// runtime's default.
	MaxConcurrency int `json:"maxConcurrency,omitempty"`
	// MemoryGiBPerVCPU is ExecutionEnvironmentMemoryGiBPerVCpu; 0: 2.
	MemoryGiBPerVCPU float64 `json:"memoryGiBPerVCpu,omitempty"`
}

func (p *CapacityProvider) validate() error {
	if p == nil {
		return nil
	}
	if !strings.HasPrefix(p.ARN, "arn:") {
		return invalidf("Value '%s' at 'capacityProviderConfig.lambdaManagedInstancesCapacityProviderConfig.capacityProviderArn' failed to satisfy constraint: Member must be an ARN", p.ARN)
	}
	if p.MaxConcurrency != 0 && (p.MaxConcurrency < 1 || p.MaxConcurrency > MaxPerEnvironment) {
		return invalidf("Value '%d' at 'perExecutionEnvironmentMaxConcurrency' failed to satisfy constraint: Member must have value between 1 and %d", p.MaxConcurrency, MaxPerEnvironment)
	}
	if p.MemoryGiBPerVCPU != 0 && p.MemoryGiBPerVCPU != 2 && p.MemoryGiBPerVCPU != 4 && p.MemoryGiBPerVCPU != 8 {
		return invalidf("Value '%g' at 'executionEnvironmentMemoryGiBPerVCpu' failed to satisfy constraint: Member must be 2, 4 or 8", p.MemoryGiBPerVCPU)
	}
	return nil
}

func validateConcurrencyTag(tags map[string]string) error {
	v, ok := tags[TagMaxConcurrency]
	if !ok {
		return nil
	}
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > MaxPerEnvironment {
		return invalidf("Tag %s must be a number from 1 to %d, got %q", TagMaxConcurrency, MaxPerEnvironment, v)
	}
	return nil
}

// VCPUs is how many vCPUs an execution environment of the function is
// entitled to: in multi-concurrency mode its memory over the GiB per vCPU
// (2 unless set); otherwise Lambda's MemorySize/1769 of one, rounded up.
func (c *Config) VCPUs() int {
	if p := c.CapacityProvider; p != nil {
		per := p.MemoryGiBPerVCPU
		if per == 0 {
			per = 2
		}
		return max(1, int(float64(c.MemorySize)/(per*1024)))
	}
	return max(1, (c.MemorySize+1768)/1769)
}

// PerEnvironment is how many invocations one execution environment of the
// function takes at once: 1 unless it is configured for multi-concurrency
// (CapacityProviderConfig or the tag), where an unset maximum is the
// runtime's default per vCPU (Lambda's: Node.js 64, Python 16, others 32).
func (c *Config) PerEnvironment() int {
	if v, ok := c.Tags[TagMaxConcurrency]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 1 {
			return min(n, MaxPerEnvironment)
		}
	}
	p := c.CapacityProvider
	if p == nil {
		return 1
	}
	if p.MaxConcurrency > 0 {
		return p.MaxConcurrency
	}
	per := 32
	switch {
	case strings.HasPrefix(c.Runtime, "nodejs"):
		per = 64
	case strings.HasPrefix(c.Runtime, "python"):
		per = 16
	}
	return min(per*c.VCPUs(), MaxPerEnvironment)
}

// MultiConcurrency reports whether the function's environments take more
// than one invocation at a time (or are configured to, whatever the number).
func (c *Config) MultiConcurrency() bool {
	_, tagged := c.Tags[TagMaxConcurrency]
	return c.CapacityProvider != nil || tagged
}
