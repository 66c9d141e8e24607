package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// storeHolds reports whether any file of the store under dataDir
// contains marker in the clear.
func storeHolds(t *testing.T, dataDir string, marker []byte) bool {
	t.Helper()
	found := false
	_ = filepath.Walk(filepath.Join(dataDir, "jetstream"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || found {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, marker) {
			found = true
		}
		return nil
	})
	return found
}

// TestStoreEncryption: with --store-key-file, a function's environment
// secret and a queued message are nowhere in the store's files in the
// clear (without the key they are: the check can see them), and the
// server reads its state back at the next start with the same key.
func TestStoreEncryption(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "store.key")
	if err := os.WriteFile(keyFile, []byte("a-long-operator-chosen-store-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret, body := []byte("env-secret-7f3a9c"), []byte("queued-body-51d2e8")
	fill := func(s *server) {
		createFunction(t, s.lambda(), "enc", goZip(t), fnOpts{env: map[string]string{"SECRET": string(secret)}})
		q := s.sqs()
		u := createQueue(t, q, "enc-q", nil)
		if _, err := q.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String(string(body))}); err != nil {
			t.Fatal(err)
		}
		if err := s.stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	plain := startServer(t, "")
	fill(plain)
	if !storeHolds(t, plain.dataDir, secret) || !storeHolds(t, plain.dataDir, body) {
		t.Fatal("an unencrypted store does not show the markers: the check below would prove nothing")
	}
	s := startServer(t, "", "--store-key-file", keyFile)
	if !bytes.Contains([]byte(s.out.String()), []byte("encrypted at rest")) {
		t.Error("the server does not say the store is encrypted")
	}
	fill(s)
	for name, m := range map[string][]byte{"environment secret": secret, "message body": body} {
		if storeHolds(t, s.dataDir, m) {
			t.Errorf("the %s is in the store's files in the clear", name)
		}
	}
	s.restart()
	got, err := s.lambda().GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("enc")})
	if err != nil || got.Configuration.Environment.Variables["SECRET"] != string(secret) {
		t.Fatalf("after a restart with the key: %v %v", got, err)
	}
}
