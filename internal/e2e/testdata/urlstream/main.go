// Command urlstream is a function URL handler written for aws-lambda-go's
// lambdaurl, which streams: its status, headers and each flushed write
// reach the client as they are made. With ?wait=BUCKET/KEY it waits, after
// its first write, until that object exists in S3 (the test puts it once
// it has read that write).
package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	lambdaurl.Start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Streamed-By", "lambdaurl")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintln(w, "first") // lambdaurl passes each write on as it is made
		if bucket, key, ok := strings.Cut(r.URL.Query().Get("wait"), "/"); ok {
			cfg, err := config.LoadDefaultConfig(context.Background())
			if err != nil {
				fmt.Fprintln(w, err)
				return
			}
			c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
			for {
				if _, err := c.HeadObject(r.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &key}); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		fmt.Fprintln(w, "second")
	}))
}
