package lambda

import "github.com/stratus-faas/stratus/internal/function"

// capacityProviderConfig is CapacityProviderConfig on the wire.
type capacityProviderConfig struct {
	LambdaManagedInstancesCapacityProviderConfig *managedInstancesConfig `json:"LambdaManagedInstancesCapacityProviderConfig,omitempty"`
}

type managedInstancesConfig struct {
	CapacityProviderArn                   string   `json:"CapacityProviderArn"`
	PerExecutionEnvironmentMaxConcurrency *int     `json:"PerExecutionEnvironmentMaxConcurrency,omitempty"`
	ExecutionEnvironmentMemoryGiBPerVCpu  *float64 `json:"ExecutionEnvironmentMemoryGiBPerVCpu,omitempty"`
}

// provider reads the configuration; nil: none given.
func (c *capacityProviderConfig) provider() (*function.CapacityProvider, error) {
	if c == nil {
		return nil, nil
	}
	m := c.LambdaManagedInstancesCapacityProviderConfig
	if m == nil {
		return nil, function.Invalidf("CapacityProviderConfig needs LambdaManagedInstancesCapacityProviderConfig")
	}
	p := &function.CapacityProvider{ARN: m.CapacityProviderArn}
	if v := m.PerExecutionEnvironmentMaxConcurrency; v != nil {
		p.MaxConcurrency = *v
		if *v == 0 {
			p.MaxConcurrency = -1 // given as 0: out of range, not the default
		}
	}
	if v := m.ExecutionEnvironmentMemoryGiBPerVCpu; v != nil {
		p.MemoryGiBPerVCPU = *v
	}
	return p, nil
}

// capacityOut is a function's CapacityProviderConfig as Lambda answers it.
func capacityOut(fn *function.Function) *capacityProviderConfig {
	p := fn.CapacityProvider
	if p == nil {
		return nil
	}
	n := fn.PerEnvironment()
	per := p.MemoryGiBPerVCPU
	if per == 0 {
		per = 2
	}
	return &capacityProviderConfig{LambdaManagedInstancesCapacityProviderConfig: &managedInstancesConfig{
		CapacityProviderArn: p.ARN, PerExecutionEnvironmentMaxConcurrency: &n, ExecutionEnvironmentMemoryGiBPerVCpu: &per,
	}}
}
