package auth

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/store"
)

// Errors the IAM API maps to its codes.
var (
	ErrNoSuchEntity   = errors.New("no such entity")
	ErrEntityExists   = errors.New("entity already exists")
	ErrDeleteConflict = errors.New("delete conflict")
	ErrLimitExceeded  = errors.New("limit exceeded")
	ErrInvalidInput   = errors.New("invalid input")
)

// Entity kinds.
const (
	KindUser   = "user"
	KindRole   = "role"
	KindPolicy = "policy"
)

// titles name the kinds in IAM's messages.
var titles = map[string]string{KindUser: "User", KindRole: "Role", KindPolicy: "Policy"}

// Entity is a user, a role or a customer managed policy, as stored.
type Entity struct {
	Kind        string            `json:"kind"`
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	Path        string            `json:"path"`
	ARN         string            `json:"arn"`
	Created     time.Time         `json:"created"`
	Updated     time.Time         `json:"updated,omitzero"`
	Description string            `json:"description,omitempty"`
	Trust       string            `json:"trust,omitempty"`      // roles: the trust policy
	MaxSession  int               `json:"maxSession,omitempty"` // roles: seconds
	Document    string            `json:"document,omitempty"`   // policies
	Inline      map[string]string `json:"inline,omitempty"`     // users and roles: name → document
	Attached    []string          `json:"attached,omitempty"`   // users and roles: managed policy ARNs
	Tags        map[string]string `json:"tags,omitempty"`
}

// AccessKey is a long-term key of a user (or the root).
type AccessKey struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	User    string    `json:"user"` // "" for the root key
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
}

// Options configure the identity store.
type Options struct {
	Log   *slog.Logger
	Clock func() time.Time
}

// IAM is the identity store: users, roles, policies and keys in a store
// bucket, with an in-memory view a watch keeps current, so that checking
// a request makes no store round trip.
type IAM struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	now   func() time.Time
	stop  func()
	token []byte // signs session tokens and URLs; the same on every node

	mu       sync.RWMutex
	entities map[string]*Entity // by store key
	keys     map[string]*AccessKey
	root     *AccessKey
	revs     map[string]uint64

	parsed sync.Map // document → *Policy
}

const (
	rootKey   = "root"
	tokenKey  = "token-key"
	keyPrefix = "k."
)

func entityKey(kind, name string) string {
	return kind[:1] + "." + hex.EncodeToString([]byte(name))
}

// Open loads the identities, creating the root key and the token key on
// first start.
func Open(ctx context.Context, kv jetstream.KeyValue, o Options) (*IAM, error) {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	a := &IAM{kv: kv, log: o.Log, now: o.Clock, entities: map[string]*Entity{}, keys: map[string]*AccessKey{}, revs: map[string]uint64{}}
	tok, err := ensure(ctx, kv, tokenKey, func() ([]byte, error) { return []byte(base64.StdEncoding.EncodeToString(random(32))), nil })
	if err != nil {
		return nil, err
	}
	if a.token, err = base64.StdEncoding.DecodeString(string(tok)); err != nil || len(a.token) < 32 {
		return nil, fmt.Errorf("token key in the store is unreadable")
	}
	if _, err := ensure(ctx, kv, rootKey, func() ([]byte, error) {
		return json.Marshal(&AccessKey{ID: "AKIA" + randomID(16), Secret: randomSecret(), Status: "Active", Created: a.now().UTC()})
	}); err != nil {
		return nil, err
	}
	if a.stop, err = store.Follow(ctx, kv, a.apply); err != nil {
		return nil, err
	}
	if a.Root() == nil {
		a.stop()
		return nil, errors.New("the root access key in the store is unreadable")
	}
	return a, nil
}

// ensure returns key's value, creating it with make when absent (once,
// whichever node is first).
func ensure(ctx context.Context, kv jetstream.KeyValue, key string, make func() ([]byte, error)) ([]byte, error) {
	e, err := kv.Get(ctx, key)
	if err == nil {
		return e.Value(), nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	v, err := make()
	if err != nil {
		return nil, err
	}
	if _, err := kv.Create(ctx, key, v); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ensure(ctx, kv, key, make)
		}
		return nil, fmt.Errorf("create %s: %w", key, err)
	}
	return v, nil
}

// Close stops the watch.
func (a *IAM) Close() { a.stop() }

func (a *IAM) apply(e jetstream.KeyValueEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applyLocked(e.Key(), e.Value(), e.Revision(), e.Operation() != jetstream.KeyValuePut)
}

func (a *IAM) applyLocked(key string, val []byte, rev uint64, deleted bool) {
	if a.revs[key] >= rev {
		return
	}
	a.revs[key] = rev
	switch {
	case key == tokenKey:
	case key == rootKey:
		var k AccessKey
		if !deleted && json.Unmarshal(val, &k) == nil {
			a.root = &k
		}
	case strings.HasPrefix(key, keyPrefix):
		id := strings.TrimPrefix(key, keyPrefix)
		var k AccessKey
		if deleted || json.Unmarshal(val, &k) != nil {
			delete(a.keys, id)
			return
		}
		a.keys[id] = &k
	default:
		var ent Entity
		if deleted || json.Unmarshal(val, &ent) != nil {
			delete(a.entities, key)
			return
		}
		a.entities[key] = &ent
	}
}

// Root is the root access key.
func (a *IAM) Root() *AccessKey {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.root
}

// put writes v under key: created when rev is 0 and create is set,
// else updated from rev (0 and !create: whatever is there). The view is
// updated at once, so the caller reads its own write.
func (a *IAM) put(ctx context.Context, key string, v any, rev uint64, create bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n uint64
	switch {
	case create:
		n, err = a.kv.Create(ctx, key, b)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrEntityExists
		}
	case rev != 0:
		n, err = a.kv.Update(ctx, key, b, rev)
	default:
		n, err = a.kv.Put(ctx, key, b)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	a.mu.Lock()
	a.applyLocked(key, b, n, false)
	a.mu.Unlock()
	return nil
}

func (a *IAM) remove(ctx context.Context, key string) error {
	if err := a.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	a.mu.Lock()
	delete(a.entities, key)
	delete(a.keys, strings.TrimPrefix(key, keyPrefix))
	a.mu.Unlock()
	return nil
}

// Get returns a copy of the entity, with its revision.
func (a *IAM) Get(kind, name string) (*Entity, uint64, error) {
	key := entityKey(kind, name)
	a.mu.RLock()
	defer a.mu.RUnlock()
	e, ok := a.entities[key]
	if !ok {
		return nil, 0, noSuch(kind, name)
	}
	c := *e
	c.Inline = maps(e.Inline)
	c.Attached = slices.Clone(e.Attached)
	return &c, a.revs[key], nil
}

func maps(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func noSuch(kind, name string) error {
	what := map[string]string{KindUser: "user", KindRole: "role", KindPolicy: "policy"}[kind]
	return fmt.Errorf("%w: The %s with name %s cannot be found.", ErrNoSuchEntity, what, name)
}

// List returns the entities of kind whose path starts with prefix, by name.
func (a *IAM) List(kind, pathPrefix string) []*Entity {
	a.mu.RLock()
	var out []*Entity
	for _, e := range a.entities {
		if e.Kind == kind && strings.HasPrefix(e.Path, pathPrefix) {
			c := *e
			out = append(out, &c)
		}
	}
	a.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var (
	nameRE = regexp.MustCompile(`^[\w+=,.@-]+$`)
	pathRE = regexp.MustCompile(`^(/|/[\x21-\x7e]*/)$`)
)

func checkName(what, name string, max int) error {
	if name == "" || len(name) > max || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: The specified value for %s is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_- and be 1 to %d characters long.", ErrInvalidInput, what, max)
	}
	return nil
}

// Create stores a new user, role or policy. Name and Path are the
// caller's; the rest is filled in.
func (a *IAM) Create(ctx context.Context, e *Entity) (*Entity, error) {
	max := map[string]int{KindUser: 64, KindRole: 64, KindPolicy: 128}[e.Kind]
	if err := checkName(titles[e.Kind]+"Name", e.Name, max); err != nil {
		return nil, err
	}
	if e.Path == "" {
		e.Path = "/"
	}
	if len(e.Path) > 512 || !pathRE.MatchString(e.Path) {
		return nil, fmt.Errorf("%w: The specified value for path is invalid. It must begin and end with / and contain only printable ASCII characters.", ErrInvalidInput)
	}
	switch e.Kind {
	case KindUser:
		e.ID = "AIDA" + randomID(17)
		e.ARN = "arn:aws:iam::" + Account + ":user" + e.Path + e.Name
	case KindRole:
		if _, err := a.parse(e.Trust, true); err != nil {
			return nil, err
		}
		if e.MaxSession == 0 {
			e.MaxSession = 3600
		}
		if e.MaxSession < 3600 || e.MaxSession > 43200 {
			return nil, fmt.Errorf("%w: The requested MaxSessionDuration must be between 3600 and 43200 seconds.", ErrInvalidInput)
		}
		e.ID = "AROA" + randomID(17)
		e.ARN = "arn:aws:iam::" + Account + ":role" + e.Path + e.Name
	case KindPolicy:
		if _, err := a.parse(e.Document, false); err != nil {
			return nil, err
		}
		e.ID = "ANPA" + randomID(17)
		e.ARN = "arn:aws:iam::" + Account + ":policy" + e.Path + e.Name
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidInput, e.Kind)
	}
	e.Created = a.now().UTC().Truncate(time.Second)
	e.Updated = e.Created
	if err := a.put(ctx, entityKey(e.Kind, e.Name), e, 0, true); err != nil {
		if errors.Is(err, ErrEntityExists) {
			return nil, fmt.Errorf("%w: %s with name %s already exists.", ErrEntityExists, titles[e.Kind], e.Name)
		}
		return nil, err
	}
	return e, nil
}

// Update changes an entity with change, retrying on a concurrent update.
func (a *IAM) Update(ctx context.Context, kind, name string, change func(*Entity) error) (*Entity, error) {
	for range 5 {
		e, rev, err := a.Get(kind, name)
		if err != nil {
			return nil, err
		}
		if err := change(e); err != nil {
			return nil, err
		}
		e.Updated = a.now().UTC().Truncate(time.Second)
		err = a.put(ctx, entityKey(kind, name), e, rev, false)
		if err == nil {
			return e, nil
		}
		if !store.WrongRevision(err) {
			return nil, err
		}
		a.refresh(ctx, entityKey(kind, name))
	}
	return nil, fmt.Errorf("%w: concurrent updates of %s %s; retry", ErrLimitExceeded, kind, name)
}

// refresh reads key from the store into the view (after a conflict, the
// watch may not have brought the newer value yet).
func (a *IAM) refresh(ctx context.Context, key string) {
	e, err := a.kv.Get(ctx, key)
	if err != nil {
		return
	}
	a.mu.Lock()
	a.applyLocked(key, e.Value(), e.Revision(), false)
	a.mu.Unlock()
}

// Delete removes an entity that nothing refers to any more, as IAM
// requires (keys, inline and attached policies of users and roles; the
// attachments of a policy).
func (a *IAM) Delete(ctx context.Context, kind, name string) error {
	e, _, err := a.Get(kind, name)
	if err != nil {
		return err
	}
	switch kind {
	case KindUser:
		if len(a.AccessKeys(name)) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must delete access keys first.", ErrDeleteConflict)
		}
		fallthrough
	case KindRole:
		if len(e.Inline) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must delete policies first.", ErrDeleteConflict)
		}
		if len(e.Attached) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must detach all policies first.", ErrDeleteConflict)
		}
	case KindPolicy:
		if a.Attachments(e.ARN) > 0 {
			return fmt.Errorf("%w: Cannot delete a policy attached to entities.", ErrDeleteConflict)
		}
	}
	return a.remove(ctx, entityKey(kind, name))
}

// Attachments counts the users and roles a managed policy is attached to.
func (a *IAM) Attachments(arn string) int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	n := 0
	for _, e := range a.entities {
		if slices.Contains(e.Attached, arn) {
			n++
		}
	}
	return n
}

// Policy returns the managed policy of arn: AWS's or the account's.
func (a *IAM) Policy(arn string) (*Entity, error) {
	if m := AWSManaged(arn); m != nil {
		return &Entity{Kind: KindPolicy, Name: m.Name, Path: m.Path, ARN: m.ARN, ID: "ANPA" + strings.ToUpper(hex.EncodeToString([]byte(m.Name)))[:17], Document: m.Document}, nil
	}
	prefix := "arn:aws:iam::" + Account + ":policy"
	rest, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: Policy %s does not exist or is not attachable.", ErrNoSuchEntity, arn)
	}
	name := rest[strings.LastIndexByte(rest, '/')+1:]
	e, _, err := a.Get(KindPolicy, name)
	if err != nil || e.ARN != arn {
		return nil, fmt.Errorf("%w: Policy %s does not exist or is not attachable.", ErrNoSuchEntity, arn)
	}
	return e, nil
}

// CreateAccessKey makes a key for user (at most two, as IAM allows).
func (a *IAM) CreateAccessKey(ctx context.Context, user string) (*AccessKey, error) {
	if _, _, err := a.Get(KindUser, user); err != nil {
		return nil, err
	}
	if len(a.AccessKeys(user)) >= 2 {
		return nil, fmt.Errorf("%w: Cannot exceed quota for AccessKeysPerUser: 2", ErrLimitExceeded)
	}
	k := &AccessKey{ID: "AKIA" + randomID(16), Secret: randomSecret(), User: user, Status: "Active", Created: a.now().UTC().Truncate(time.Second)}
	if err := a.put(ctx, keyPrefix+k.ID, k, 0, true); err != nil {
		return nil, err
	}
	return k, nil
}

// AccessKeys lists user's keys, oldest first.
func (a *IAM) AccessKeys(user string) []*AccessKey {
	a.mu.RLock()
	var out []*AccessKey
	for _, k := range a.keys {
		if k.User == user {
			c := *k
			out = append(out, &c)
		}
	}
	a.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created.Before(out[j].Created) || out[i].Created.Equal(out[j].Created) && out[i].ID < out[j].ID
	})
	return out
}

// DeleteAccessKey removes one of user's keys.
func (a *IAM) DeleteAccessKey(ctx context.Context, user, id string) error {
	a.mu.RLock()
	k, ok := a.keys[id]
	a.mu.RUnlock()
	if !ok || k.User != user {
		return fmt.Errorf("%w: The Access Key with id %s cannot be found.", ErrNoSuchEntity, id)
	}
	return a.remove(ctx, keyPrefix+id)
}

// SetAccessKeyStatus makes a key Active or Inactive.
func (a *IAM) SetAccessKeyStatus(ctx context.Context, user, id, status string) error {
	if status != "Active" && status != "Inactive" {
		return fmt.Errorf("%w: Status must be Active or Inactive", ErrInvalidInput)
	}
	a.mu.RLock()
	k, ok := a.keys[id]
	rev := a.revs[keyPrefix+id]
	a.mu.RUnlock()
	if !ok || k.User != user {
		return fmt.Errorf("%w: The Access Key with id %s cannot be found.", ErrNoSuchEntity, id)
	}
	c := *k
	c.Status = status
	return a.put(ctx, keyPrefix+id, &c, rev, false)
}

// parse compiles a document once.
func (a *IAM) parse(doc string, resource bool) (*Policy, error) {
	key := doc
	if resource {
		key = "R" + doc
	}
	if p, ok := a.parsed.Load(key); ok {
		return p.(*Policy), nil
	}
	p, err := ParsePolicy(doc, resource)
	if err != nil {
		return nil, err
	}
	a.parsed.Store(key, p)
	return p, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

func randomID(n int) string {
	return base32.StdEncoding.EncodeToString(random(n))[:n]
}

func randomSecret() string {
	return base64.StdEncoding.EncodeToString(random(30)) // 40 characters, as AWS's
}

// DefaultRole is the execution role made at first start, which the
// stratus CLI gives the functions it deploys: Lambda may assume it, and
// it allows what AWS's basic execution role does (logs), nothing more.
const DefaultRole = "stratus-function"

// EnsureDefaultRole creates DefaultRole once.
func (a *IAM) EnsureDefaultRole(ctx context.Context) error {
	if _, _, err := a.Get(KindRole, DefaultRole); err == nil {
		return nil
	}
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	_, err := a.Create(ctx, &Entity{Kind: KindRole, Name: DefaultRole, Trust: trust, Description: "Execution role of functions deployed with the stratus CLI",
		Attached: []string{"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}})
	if errors.Is(err, ErrEntityExists) {
		return nil
	}
	return err
}
