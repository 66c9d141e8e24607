package function

import (
	"regexp"
	"time"
)

// MaxAsyncPayload is Lambda's limit for an asynchronous invocation.
const MaxAsyncPayload = 1024 * 1024

// Defaults of asynchronous invocation, as Lambda's.
const (
	DefaultMaxRetryAttempts = 2
	DefaultMaxEventAge      = 6 * time.Hour
)

// EventInvokeConfig controls asynchronous invocation of a function.
type EventInvokeConfig struct {
	Function             string    `json:"function"`
	MaximumRetryAttempts *int      `json:"maximumRetryAttempts,omitempty"`
	MaximumEventAge      *int      `json:"maximumEventAgeInSeconds,omitempty"`
	OnSuccess            string    `json:"onSuccess,omitempty"` // destination ARN
	OnFailure            string    `json:"onFailure,omitempty"`
	LastModified         time.Time `json:"lastModified"`
}

// Retries is the number of retries after a function error.
func (c *EventInvokeConfig) Retries() int {
	if c == nil || c.MaximumRetryAttempts == nil {
		return DefaultMaxRetryAttempts
	}
	return *c.MaximumRetryAttempts
}

// MaxAge is how long an event may wait before it is given up.
func (c *EventInvokeConfig) MaxAge() time.Duration {
	if c == nil || c.MaximumEventAge == nil {
		return DefaultMaxEventAge
	}
	return time.Duration(*c.MaximumEventAge) * time.Second
}

var (
	lambdaARN = regexp.MustCompile(`^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[a-zA-Z0-9_-]+(:[a-zA-Z0-9_$-]+)?$`)
	sqsARN    = regexp.MustCompile(`^arn:aws:sqs:[a-z0-9-]+:\d{12}:[a-zA-Z0-9_-]{1,80}$`)
)

// ValidTarget reports whether arn names a function or an SQS queue, the
// targets Stratus delivers to.
func ValidTarget(arn string) bool { return lambdaARN.MatchString(arn) || sqsARN.MatchString(arn) }

// Validate checks the ranges and destinations Lambda allows; Stratus can
// deliver to functions and queues.
func (c *EventInvokeConfig) Validate() error {
	if r := c.MaximumRetryAttempts; r != nil && (*r < 0 || *r > 2) {
		return invalidf("Value '%d' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value between 0 and 2", *r)
	}
	if a := c.MaximumEventAge; a != nil && (*a < 60 || *a > 21600) {
		return invalidf("Value '%d' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value between 60 and 21600", *a)
	}
	for _, d := range []string{c.OnSuccess, c.OnFailure} {
		if d != "" && !ValidTarget(d) {
			return invalidf("Destination %s is not supported: Stratus delivers to Lambda functions and SQS queues", d)
		}
	}
	return nil
}
