package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratus-faas/stratus/internal/api/cloudwatchlogs"
	iamapi "github.com/stratus-faas/stratus/internal/api/iam"
	sqsapi "github.com/stratus-faas/stratus/internal/api/sqs"
	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/config"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/store"
)

// Profile is the AWS profile the server writes for its root key.
const Profile = "stratus"

// writeProfile writes the root key where the AWS CLI, boto3 and the
// stratus CLI find it (a credentials and a config file in the data
// folder, profile "stratus"), and says how to use it.
func writeProfile(dataDir, endpoint, region string, root *auth.AccessKey, log *slog.Logger) error {
	creds := filepath.Join(dataDir, "credentials")
	conf := filepath.Join(dataDir, "config")
	c := fmt.Sprintf("[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", Profile, root.ID, root.Secret)
	k := fmt.Sprintf("[profile %s]\nregion = %s\nendpoint_url = %s\n", Profile, region, endpoint)
	for path, body := range map[string]string{creds: c, conf: k} {
		if err := writeFileAtomic(path, []byte(body)); err != nil {
			return fmt.Errorf("write the root profile: %w", err)
		}
	}
	log.Info("root credentials are in profile "+Profile+"; for the AWS CLI and SDKs: export AWS_SHARED_CREDENTIALS_FILE="+creds+
		" AWS_CONFIG_FILE="+conf+" AWS_PROFILE="+Profile, "access_key_id", root.ID)
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// queryRouter serves POST /, which the query protocols of SQS, IAM and
// STS share: by the service the request was signed for, else by the
// API version it names.
type queryRouter struct {
	sqs  *sqsapi.API
	iam  *iamapi.API
	logs *cloudwatchlogs.API
}

func (q *queryRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), cloudwatchlogs.TargetPrefix) {
		q.logs.ServeHTTP(w, r)
		return
	}
	if r.Header.Get("X-Amz-Target") != "" {
		q.sqs.ServeHTTP(w, r)
		return
	}
	body, err := bodyOf(r)
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		form = url.Values{}
	}
	for k, v := range r.URL.Query() {
		if _, ok := form[k]; !ok {
			form[k] = v
		}
	}
	switch service(r, form) {
	case "iam":
		q.iam.ServeHTTP(w, r, form, false)
	case "sts":
		q.iam.ServeHTTP(w, r, form, true)
	default:
		r.Body = &signedBody{b: body}
		q.sqs.ServeHTTP(w, r)
	}
}

func bodyOf(r *http.Request) ([]byte, error) {
	if b, ok := r.Body.(*signedBody); ok {
		return b.Bytes(), nil
	}
	var buf bytes.Buffer
	_, err := buf.ReadFrom(io.LimitReader(r.Body, 8<<20+1))
	if err == nil && buf.Len() > 8<<20 {
		err = errTooLarge
	}
	return buf.Bytes(), err
}

// service is the service a query request is for.
func service(r *http.Request, form url.Values) string {
	if sig, err := auth.ParseSignature(r); err == nil {
		return sig.Service
	}
	switch form.Get("Version") {
	case iamapi.IAMVersion:
		return "iam"
	case iamapi.STSVersion:
		return "sts"
	}
	return "sqs"
}

// allowed serves h to callers allowed action; the others get AWS's
// AccessDenied.
func allowed(authz auth.Authorizer, action string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authz.Authorize(r.Context(), action, "*"); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"message":"`+strings.ReplaceAll(err.Error(), `"`, `'`)+`"}`)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// storeKey reads the key that encrypts the embedded store, if any.
func storeKey(cfg config.Server, log *slog.Logger) (string, error) {
	if cfg.StoreKeyFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(cfg.StoreKeyFile)
	if err != nil {
		return "", fmt.Errorf("read --store-key-file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < 16 {
		return "", fmt.Errorf("--store-key-file %s: the key must be at least 16 characters", cfg.StoreKeyFile)
	}
	if cfg.NATSURL != "" {
		log.Warn("--store-key-file encrypts the embedded store only: with --nats-url, encrypt at rest in that NATS's own configuration (jetstream { key: ... })")
		return "", nil
	}
	log.Info("the store is encrypted at rest (JetStream, ChaCha20-Poly1305)")
	return key, nil
}

// sendDeadLetter puts a message with string attributes on a queue.
func sendDeadLetter(ctx context.Context, queues *queue.Manager, queueARN string, body []byte, attrs map[string]string) error {
	name, err := queue.NameFromARN(queueARN)
	if err != nil {
		return err
	}
	qa := make(map[string]queue.Attribute, len(attrs))
	for k, v := range attrs {
		qa[k] = queue.Attribute{DataType: "String", StringValue: &v}
	}
	res, err := queues.Send(ctx, name, []queue.SendEntry{{Body: string(body), Attributes: qa}})
	if err != nil {
		return err
	}
	return res[0].Err
}

// clusterOptions reads the cluster settings, or nil for a node alone.
func clusterOptions(cfg config.Server) (*store.Cluster, error) {
	if !cfg.Clustered() {
		return nil, nil
	}
	secret, err := os.ReadFile(cfg.ClusterSecretFile)
	if err != nil {
		return nil, fmt.Errorf("read --cluster-secret-file: %w", err)
	}
	c := &store.Cluster{Name: cfg.ClusterName, Node: cfg.Node, Listen: cfg.ClusterListen, Peers: cfg.ClusterPeers,
		Secret: strings.TrimSpace(string(secret)), CertFile: cfg.ClusterTLSCert, KeyFile: cfg.ClusterTLSKey, CAFile: cfg.ClusterTLSCA}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
