// Command jsonlog is a Go function that logs JSON records at each level
// with log/slog, and one plain line: what LoggingConfig's levels filter
// for a custom runtime.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	lambda.Start(func(ctx context.Context, _ map[string]any) (string, error) {
		log.Debug("go-debug")
		log.Info("go-info")
		log.Warn("go-warn")
		log.Error("go-error")
		fmt.Println("go-plain")
		return "ok", nil
	})
}
