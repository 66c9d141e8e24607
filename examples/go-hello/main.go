// Command go-hello is a Lambda function built with aws-lambda-go. Build it
// as the bootstrap of a provided.al2023 function:
//
//	CGO_ENABLED=0 go build -o examples/go-hello/dist/bootstrap ./examples/go-hello
//	stratus deploy go-hello examples/go-hello/dist
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Event is what the function accepts.
type Event struct {
	Name    string `json:"name"`
	SleepMs int    `json:"sleepMs,omitempty"` // for trying timeouts and concurrency
	Fail    string `json:"fail,omitempty"`    // "error" returns an error, "panic" panics, "exit" exits
	Echo    any    `json:"echo,omitempty"`
	Env     string `json:"env,omitempty"`   // name of an environment variable to report
	Big     int    `json:"big,omitempty"`   // answer with this many bytes
	Print   string `json:"print,omitempty"` // a line for the log
}

// Reply is what it answers.
type Reply struct {
	Message     string `json:"message"`
	RequestID   string `json:"requestId"`
	Function    string `json:"function"`
	Memory      int    `json:"memoryLimitInMB"`
	RemainingMs int64  `json:"remainingMs"`
	Pid         int    `json:"pid"`
	Instance    string `json:"instance"` // differs between instances, stays across warm invocations
	Echo        any    `json:"echo,omitempty"`
	EnvValue    string `json:"envValue,omitempty"`
	Big         string `json:"big,omitempty"`
}

func handle(ctx context.Context, ev Event) (*Reply, error) {
	lc, _ := lambdacontext.FromContext(ctx)
	if ev.Print != "" {
		fmt.Println(ev.Print)
	}
	if ev.SleepMs > 0 {
		time.Sleep(time.Duration(ev.SleepMs) * time.Millisecond)
	}
	switch ev.Fail {
	case "error":
		return nil, errors.New("failed on purpose")
	case "panic":
		panic("panicked on purpose")
	case "exit":
		os.Exit(3)
	}
	name := ev.Name
	if name == "" {
		name = "world"
	}
	deadline, _ := ctx.Deadline()
	r := &Reply{
		Message:     "hello, " + name,
		Function:    lambdacontext.FunctionName,
		Memory:      lambdacontext.MemoryLimitInMB,
		RemainingMs: time.Until(deadline).Milliseconds(),
		Pid:         os.Getpid(),
		Instance:    instance,
		Echo:        ev.Echo,
	}
	if lc != nil {
		r.RequestID = lc.AwsRequestID
	}
	if ev.Env != "" {
		r.EnvValue = os.Getenv(ev.Env)
	}
	if ev.Big > 0 {
		b := make([]byte, ev.Big)
		for i := range b {
			b[i] = 'x'
		}
		r.Big = string(b)
	}
	return r, nil
}

// instance identifies this execution environment.
var instance = func() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

func main() { lambda.Start(handle) }
