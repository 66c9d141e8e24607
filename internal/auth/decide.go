package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credentials are temporary credentials of a role.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
}

// session is what a session token carries. Tokens are signed with the
// token key, so that checking one needs no store: any node can, and
// minting one for an instance's cold start costs two HMACs.
type session struct {
	Key     string `json:"k"`
	Role    string `json:"r"` // role name
	Session string `json:"s"`
	Expires int64  `json:"x"`
}

const tokenPrefix = "SST1"

// Session mints credentials for role, valid for d.
func (a *IAM) Session(role *Entity, name string, d time.Duration) Credentials {
	s := session{Key: "ASIA" + randomID(16), Role: role.Name, Session: name, Expires: a.now().Add(d).Unix()}
	body, _ := json.Marshal(s)
	payload := base64.RawURLEncoding.EncodeToString(body)
	mac := a.mac("token", payload)
	return Credentials{
		AccessKeyID:     s.Key,
		SecretAccessKey: a.sessionSecret(payload),
		SessionToken:    tokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(mac),
		Expiration:      time.Unix(s.Expires, 0).UTC(),
	}
}

func (a *IAM) mac(purpose, data string) []byte {
	m := hmac.New(sha256.New, a.token)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(data))
	return m.Sum(nil)
}

func (a *IAM) sessionSecret(payload string) string {
	return base64.StdEncoding.EncodeToString(a.mac("secret", payload))[:40]
}

// openSession checks a session token for access key id.
func (a *IAM) openSession(id, token string) (*session, string, error) {
	bad := errorf(ErrBadToken, "The security token included in the request is invalid.")
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return nil, "", bad
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, "", bad
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, a.mac("token", payload)) {
		return nil, "", bad
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, "", bad
	}
	var s session
	if err := json.Unmarshal(body, &s); err != nil || s.Key != id {
		return nil, "", bad
	}
	if a.now().Unix() >= s.Expires {
		return nil, "", errorf(ErrBadToken, "The security token included in the request is expired")
	}
	return &s, a.sessionSecret(payload), nil
}

// Authenticate finds who made sig and the secret it must verify with.
// Unknown and inactive keys, and bad session tokens, are refused.
func (a *IAM) Authenticate(sig *Signature) (*Principal, string, error) {
	if sig.Token != "" || strings.HasPrefix(sig.AccessKey, "ASIA") {
		if sig.Token == "" {
			return nil, "", errorf(ErrUnknownKey, "The security token included in the request is invalid.")
		}
		s, secret, err := a.openSession(sig.AccessKey, sig.Token)
		if err != nil {
			return nil, "", err
		}
		role, _, err := a.Get(KindRole, s.Role)
		if err != nil {
			return nil, "", errorf(ErrBadToken, "The security token included in the request is invalid: its role no longer exists.")
		}
		return &Principal{
			Kind: AssumedRole, Name: role.Name, Session: s.Session, RoleARN: role.ARN, AccessKey: s.Key,
			ARN:    "arn:aws:sts::" + Account + ":assumed-role/" + role.Name + "/" + s.Session,
			UserID: role.ID + ":" + s.Session,
		}, secret, nil
	}
	a.mu.RLock()
	root := a.root
	k, ok := a.keys[sig.AccessKey]
	a.mu.RUnlock()
	if root != nil && sig.AccessKey == root.ID {
		return &Principal{Kind: Root, ARN: "arn:aws:iam::" + Account + ":root", Name: "root", AccessKey: root.ID, UserID: Account}, root.Secret, nil
	}
	if !ok || k.Status != "Active" {
		return nil, "", errorf(ErrUnknownKey, "The security token included in the request is invalid.")
	}
	u, _, err := a.Get(KindUser, k.User)
	if err != nil {
		return nil, "", errorf(ErrUnknownKey, "The security token included in the request is invalid.")
	}
	return &Principal{Kind: User, ARN: u.ARN, Name: u.Name, AccessKey: k.ID, UserID: u.ID}, k.Secret, nil
}

// RootPrincipal is the root, for the development mode that takes any
// credentials as root.
func (a *IAM) RootPrincipal() *Principal {
	r := a.Root()
	return &Principal{Kind: Root, ARN: "arn:aws:iam::" + Account + ":root", Name: "root", AccessKey: r.ID, UserID: Account}
}

// policies are the identity policies of p.
func (a *IAM) policies(p *Principal) []*Policy {
	var e *Entity
	switch p.Kind {
	case User:
		e, _, _ = a.Get(KindUser, p.Name)
	case AssumedRole:
		e, _, _ = a.Get(KindRole, p.Name)
	}
	if e == nil {
		return nil
	}
	out := make([]*Policy, 0, len(e.Inline)+len(e.Attached))
	for _, doc := range e.Inline {
		if pol, err := a.parse(doc, false); err == nil {
			out = append(out, pol)
		}
	}
	for _, arn := range e.Attached {
		if m := AWSManaged(arn); m != nil {
			out = append(out, m.Policy) // compiled once, at start
			continue
		}
		if m, err := a.Policy(arn); err == nil {
			if pol, err := a.parse(m.Document, false); err == nil {
				out = append(out, pol)
			}
		}
	}
	return out
}

// requestContext is the condition keys Stratus knows for p, plus conds.
func (a *IAM) requestContext(p *Principal, conds []Cond) map[string][]string {
	now := a.now().UTC()
	ctx := map[string][]string{
		"aws:principalarn":     {p.IAMARN()},
		"aws:principalaccount": {Account},
		"aws:securetransport":  {strconv.FormatBool(p.Secure)},
		"aws:currenttime":      {now.Format(time.RFC3339)},
		"aws:epochtime":        {strconv.FormatInt(now.Unix(), 10)},
		"aws:userid":           {p.UserID},
	}
	switch p.Kind {
	case User:
		ctx["aws:username"] = []string{p.Name}
		ctx["aws:principaltype"] = []string{"User"}
	case AssumedRole:
		ctx["aws:principaltype"] = []string{"AssumedRole"}
	case Root:
		ctx["aws:principaltype"] = []string{"Account"}
	}
	if p.SourceIP != "" {
		ctx["aws:sourceip"] = []string{p.SourceIP}
	}
	for _, c := range conds {
		ctx[strings.ToLower(c.Key)] = c.Values
	}
	return ctx
}

// Authorize decides on the identity policies of the caller alone.
func (a *IAM) Authorize(ctx context.Context, action, resource string, conds ...Cond) error {
	return a.AuthorizeWith(ctx, nil, action, resource, conds...)
}

// AuthorizeWith decides with a resource policy too: allowed when an
// identity or the resource policy allows and neither denies. The root is
// allowed everything, as on AWS (a resource policy's deny aside).
func (a *IAM) AuthorizeWith(ctx context.Context, resourcePolicy *Policy, action, resource string, conds ...Cond) error {
	p := From(ctx)
	if p == nil {
		return &Denied{Action: action, Resource: resource}
	}
	if p.Kind == Root && resourcePolicy == nil {
		return nil // the invocation path's common case: nothing to evaluate
	}
	req := &Request{Action: action, Resource: resource, Principal: p, Context: a.requestContext(p, conds)}
	res := resourcePolicy.Evaluate(req)
	if res == DeniedExplicitly {
		return &Denied{Action: action, Resource: resource, Who: p.ARN, Explicit: true}
	}
	if p.Kind == Root {
		return nil
	}
	allowed := res == Allowed
	for _, pol := range a.policies(p) {
		switch pol.Evaluate(req) {
		case DeniedExplicitly:
			return &Denied{Action: action, Resource: resource, Who: p.ARN, Explicit: true}
		case Allowed:
			allowed = true
		}
	}
	if !allowed {
		return &Denied{Action: action, Resource: resource, Who: p.ARN}
	}
	return nil
}

// RoleAllows reports whether the role of arn may perform action on
// resource by its own policies: what Lambda checks of a function's role
// before it polls a queue or sends to a destination for it.
func (a *IAM) RoleAllows(roleARN, action, resource string) error {
	role, err := a.RoleByARN(roleARN)
	if err != nil {
		return err
	}
	p := &Principal{Kind: AssumedRole, Name: role.Name, RoleARN: role.ARN, ARN: "arn:aws:sts::" + Account + ":assumed-role/" + role.Name + "/stratus", UserID: role.ID}
	return a.Authorize(WithPrincipal(context.Background(), p), action, resource)
}

// RoleByARN finds a role by its ARN.
func (a *IAM) RoleByARN(arn string) (*Entity, error) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::"+Account+":role/")
	if !ok {
		return nil, fmt.Errorf("%w: The role %s cannot be found.", ErrNoSuchEntity, arn)
	}
	name := rest[strings.LastIndexByte(rest, '/')+1:]
	role, _, err := a.Get(KindRole, name)
	if err != nil || role.ARN != arn {
		return nil, fmt.Errorf("%w: The role %s cannot be found.", ErrNoSuchEntity, arn)
	}
	return role, nil
}

// ErrCannotAssume is a trust policy that does not let the caller in.
var ErrCannotAssume = errors.New("cannot assume role")

// Trusts reports whether role's trust policy lets the service principal
// (lambda.amazonaws.com) or p assume it.
func (a *IAM) Trusts(role *Entity, service string, p *Principal) error {
	trust, err := a.parse(role.Trust, true)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCannotAssume, err)
	}
	req := &Request{Action: "sts:AssumeRole", Resource: role.ARN, Service: service, Principal: p, Context: map[string][]string{}}
	if p != nil {
		req.Context = a.requestContext(p, nil)
	}
	if trust.Evaluate(req) != Allowed {
		who := service
		if p != nil {
			who = p.ARN
		}
		return fmt.Errorf("%w: %s is not allowed to assume %s by its trust policy", ErrCannotAssume, who, role.ARN)
	}
	return nil
}

// AssumeRole is STS AssumeRole for the caller of ctx: the caller's own
// policies must allow sts:AssumeRole on the role (the root needs none)
// and the role's trust policy must name the caller.
func (a *IAM) AssumeRole(ctx context.Context, roleARN, name string, d time.Duration) (Credentials, *Entity, error) {
	role, err := a.RoleByARN(roleARN)
	if err != nil {
		return Credentials{}, nil, err
	}
	p := From(ctx)
	if err := a.Authorize(ctx, "sts:AssumeRole", role.ARN); err != nil {
		return Credentials{}, nil, err
	}
	if err := a.Trusts(role, "", p); err != nil && p.Kind != Root {
		return Credentials{}, nil, &Denied{Action: "sts:AssumeRole", Resource: role.ARN, Who: p.ARN}
	}
	if d == 0 {
		d = time.Hour
	}
	if d < 15*time.Minute || d > time.Duration(role.MaxSession)*time.Second {
		return Credentials{}, nil, fmt.Errorf("%w: The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", ErrInvalidInput)
	}
	return a.Session(role, name, d), role, nil
}

// SignURL returns a signature for a path the server hands out to be
// fetched without credentials (a function's code, as Lambda hands out
// a presigned S3 URL), valid until expires.
func (a *IAM) SignURL(path string, expires time.Time) string {
	return base64.RawURLEncoding.EncodeToString(a.mac("url", path+"\x00"+strconv.FormatInt(expires.Unix(), 10)))
}

// CheckURL verifies SignURL's signature.
func (a *IAM) CheckURL(path, sig string, expires int64) bool {
	if a.now().Unix() > expires {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	return err == nil && hmac.Equal(got, a.mac("url", path+"\x00"+strconv.FormatInt(expires, 10)))
}

// LambdaPrincipal is the service that assumes functions' roles.
const LambdaPrincipal = "lambda.amazonaws.com"

// ExecutionRole checks, as Lambda does at CreateFunction and when the
// role changes, that arn names a role Lambda may assume and that the
// caller may pass it (iam:PassRole).
func (a *IAM) ExecutionRole(ctx context.Context, arn string) error {
	role, err := a.RoleByARN(arn)
	if err != nil {
		return fmt.Errorf("%w: The role defined for the function cannot be assumed by Lambda.", ErrCannotAssume)
	}
	if err := a.Trusts(role, LambdaPrincipal, nil); err != nil {
		return fmt.Errorf("%w: The role defined for the function cannot be assumed by Lambda.", ErrCannotAssume)
	}
	return a.Authorize(ctx, "iam:PassRole", role.ARN)
}

// InstanceCredentials are the credentials an instance of function name
// runs with: a session of its execution role named after the function,
// as on Lambda; false when the role is gone or no longer trusts Lambda.
func (a *IAM) InstanceCredentials(roleARN, name string, d time.Duration) (Credentials, bool) {
	role, err := a.RoleByARN(roleARN)
	if err != nil || a.Trusts(role, LambdaPrincipal, nil) != nil {
		return Credentials{}, false
	}
	return a.Session(role, name, d), true
}

// AllowsService reports whether a resource policy lets the service
// principal (apigateway.amazonaws.com, s3.amazonaws.com) perform action
// on resource, with the request's conditions (aws:SourceArn, ...):
// how a trigger of another service is let in.
func AllowsService(pol *Policy, service, action, resource string, conds ...Cond) bool {
	return evaluateAnonymous(pol, &Request{Action: action, Resource: resource, Service: service}, conds) == Allowed
}

// AllowsAnyone reports whether a resource policy grants action on
// resource to every caller ("*"), as a function URL with AuthType NONE
// needs.
func AllowsAnyone(pol *Policy, action, resource string, conds ...Cond) bool {
	return evaluateAnonymous(pol, &Request{Action: action, Resource: resource, Principal: &Principal{Kind: Anonymous, ARN: "anonymous"}}, conds) == Allowed
}

func evaluateAnonymous(pol *Policy, req *Request, conds []Cond) Effect {
	req.Context = map[string][]string{"aws:sourceaccount": {Account}}
	for _, c := range conds {
		req.Context[strings.ToLower(c.Key)] = c.Values
	}
	return pol.Evaluate(req)
}
