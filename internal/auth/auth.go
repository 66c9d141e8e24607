// Package auth decides who is calling and what they may do, as AWS
// does: Signature Version 4 on every request, identities and access keys,
// IAM policy evaluation (explicit deny wins, an allow is needed), the
// temporary credentials of roles (STS and the instances of functions),
// and resource policies. It is the one place that decides; the API
// packages ask it and put its answers on their wire.
package auth

import (
	"context"
	"errors"
	"fmt"
)

// Account is the one account of a Stratus installation.
const Account = "000000000000"

// Kinds of authentication failure; each protocol has its own error code
// for each (api packages map them).
var (
	ErrMissing      = errors.New("missing authentication") // unsigned
	ErrMalformed    = errors.New("malformed signature")
	ErrUnknownKey   = errors.New("unknown access key")
	ErrBadSignature = errors.New("signature does not match")
	ErrSkewed       = errors.New("request time too skewed")
	ErrExpired      = errors.New("expired")       // a presigned URL past its expiry
	ErrBadToken     = errors.New("invalid token") // a session token that does not verify or has expired
)

// Error is an authentication failure: one of the kinds above with the
// message for the caller.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// PrincipalKind says what signed a request.
type PrincipalKind int

const (
	Root PrincipalKind = iota
	User
	AssumedRole
	Anonymous // an unsigned caller, as a public function URL's
)

// Principal is the identity a request was made with.
type Principal struct {
	Kind      PrincipalKind
	ARN       string // arn:aws:iam::ACCOUNT:root, ...:user/NAME, arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
	Name      string // the user's or role's name
	Session   string // assumed roles: the session name
	RoleARN   string // assumed roles: the role's own ARN
	AccessKey string
	UserID    string // GetCallerIdentity's UserId
	Secure    bool   // the request came over TLS
	SourceIP  string
	// Payload, on an S3 request, is how its body must be checked.
	Payload *Payload
}

// IAMARN is the ARN policies name this principal by (aws:PrincipalArn):
// the role's, for an assumed role.
func (p *Principal) IAMARN() string {
	if p.Kind == AssumedRole {
		return p.RoleARN
	}
	return p.ARN
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// From is the principal of ctx, or nil.
func From(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Denied is an authorization failure, with AWS's message.
type Denied struct {
	Action   string
	Resource string
	Who      string
	Explicit bool // an explicit Deny matched
}

func (d *Denied) Error() string {
	why := "because no identity-based policy allows the " + d.Action + " action"
	if d.Explicit {
		why = "with an explicit deny in a policy"
	}
	who := d.Who
	if who == "" {
		who = "anonymous"
	}
	return "User: " + who + " is not authorized to perform: " + d.Action + " on resource: " + d.Resource + " " + why
}

// Authorizer decides whether the principal of ctx may perform action on
// resource; nil means yes, else a *Denied.
type Authorizer interface {
	Authorize(ctx context.Context, action, resource string, conds ...Cond) error
}

// Cond is one condition key of a request and its values, for policies'
// Condition blocks (aws:SourceArn, lambda:FunctionUrlAuthType, ...).
type Cond struct {
	Key    string
	Values []string
}

// Ask asks authz whether the caller of ctx may perform action on
// resource. An API built without an authorizer allows nothing: a missing
// dependency must never open every route.
func Ask(ctx context.Context, authz Authorizer, action, resource string, conds ...Cond) error {
	if authz == nil {
		return &Denied{Action: action, Resource: resource}
	}
	return authz.Authorize(ctx, action, resource, conds...)
}
