// Command s3probe is a function that writes and reads an object with
// aws-sdk-go-v2's S3 client, configured as any application configures it
// for an S3-compatible store (path-style), and nothing else: the endpoint,
// region and credentials come from the instance's environment.
package main

import (
	"context"
	"io"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

type event struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	Body   string `json:"body"`
}

func handle(ctx context.Context, e event) (string, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return "", err
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &e.Bucket, Key: &e.Key, Body: strings.NewReader(e.Body)}); err != nil {
		return "", err
	}
	o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.Bucket, Key: aws.String(e.Key)})
	if err != nil {
		return "", err
	}
	defer o.Body.Close()
	b, err := io.ReadAll(o.Body)
	return string(b), err
}

func main() { lambda.Start(handle) }
