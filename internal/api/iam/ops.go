package iam

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
)

type userXML struct {
	Path       string
	UserName   string
	UserID     string `xml:"UserId"`
	Arn        string
	CreateDate string
}

type roleXML struct {
	Path                     string
	RoleName                 string
	RoleID                   string `xml:"RoleId"`
	Arn                      string
	CreateDate               string
	AssumeRolePolicyDocument string
	Description              string `xml:",omitempty"`
	MaxSessionDuration       int
}

type policyXML struct {
	PolicyName       string
	PolicyID         string `xml:"PolicyId"`
	Arn              string
	Path             string
	DefaultVersionID string `xml:"DefaultVersionId"`
	AttachmentCount  int
	IsAttachable     bool
	CreateDate       string
	UpdateDate       string
	Description      string `xml:",omitempty"`
}

type accessKeyXML struct {
	UserName        string
	AccessKeyID     string `xml:"AccessKeyId"`
	Status          string
	SecretAccessKey string `xml:",omitempty"`
	CreateDate      string
}

type attachedXML struct {
	PolicyName string
	PolicyArn  string
}

func toUser(e *auth.Entity) userXML {
	return userXML{Path: e.Path, UserName: e.Name, UserID: e.ID, Arn: e.ARN, CreateDate: isoTime(e.Created)}
}

func toRole(e *auth.Entity) roleXML {
	return roleXML{Path: e.Path, RoleName: e.Name, RoleID: e.ID, Arn: e.ARN, CreateDate: isoTime(e.Created),
		AssumeRolePolicyDocument: encodeDoc(e.Trust), Description: e.Description, MaxSessionDuration: e.MaxSession}
}

func (a *API) toPolicy(e *auth.Entity) policyXML {
	created := e.Created
	if created.IsZero() {
		created = time.Date(2015, 2, 6, 18, 40, 0, 0, time.UTC) // AWS managed policies
	}
	updated := e.Updated
	if updated.IsZero() {
		updated = created
	}
	return policyXML{PolicyName: e.Name, PolicyID: e.ID, Arn: e.ARN, Path: e.Path, DefaultVersionID: "v1",
		AttachmentCount: a.iam.Attachments(e.ARN), IsAttachable: true, CreateDate: isoTime(created), UpdateDate: isoTime(updated), Description: e.Description}
}

// members encodes a list as the query protocol's <member> elements.
type members[T any] struct {
	Member []T `xml:"member"`
}

func need(form url.Values, names ...string) error {
	for _, n := range names {
		if form.Get(n) == "" {
			return invalid("1 validation error detected: Value null at '" + lowerFirst(n) + "' failed to satisfy constraint: Member must not be null")
		}
	}
	return nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func arnOf(kind, path, name string) string {
	if path == "" {
		path = "/"
	}
	return "arn:aws:iam::" + auth.Account + ":" + kind + path + name
}

// resourceOf is the ARN an IAM operation acts on, for authorization.
func (a *API) resourceOf(r *http.Request, op string, form url.Values) string {
	switch {
	case form.Get("PolicyArn") != "" && !strings.Contains(op, "Attach"):
		return form.Get("PolicyArn")
	case op == "CreatePolicy":
		return arnOf("policy", form.Get("Path"), form.Get("PolicyName"))
	case form.Get("RoleName") != "":
		if e, _, err := a.iam.Get(auth.KindRole, form.Get("RoleName")); err == nil {
			return e.ARN
		}
		return arnOf("role", form.Get("Path"), form.Get("RoleName"))
	case form.Get("UserName") != "":
		if e, _, err := a.iam.Get(auth.KindUser, form.Get("UserName")); err == nil {
			return e.ARN
		}
		return arnOf("user", form.Get("Path"), form.Get("UserName"))
	case strings.HasPrefix(op, "List"):
		return "*"
	}
	// GetUser, CreateAccessKey and the like with no user name act on the
	// caller.
	if p := auth.From(r.Context()); p != nil {
		return p.ARN
	}
	return "*"
}

// caller is the user an operation without UserName acts on: the caller,
// when it is a user.
func caller(ctx context.Context) (string, error) {
	p := auth.From(ctx)
	if p == nil || p.Kind != auth.User {
		return "", invalid("Must specify userName when calling with non-User credentials")
	}
	return p.Name, nil
}

var iamOps = map[string]bool{
	"CreateUser": true, "GetUser": true, "ListUsers": true, "DeleteUser": true,
	"CreateAccessKey": true, "ListAccessKeys": true, "DeleteAccessKey": true, "UpdateAccessKey": true,
	"CreateRole": true, "GetRole": true, "ListRoles": true, "DeleteRole": true, "UpdateAssumeRolePolicy": true,
	"PutUserPolicy": true, "GetUserPolicy": true, "DeleteUserPolicy": true, "ListUserPolicies": true,
	"PutRolePolicy": true, "GetRolePolicy": true, "DeleteRolePolicy": true, "ListRolePolicies": true,
	"CreatePolicy": true, "GetPolicy": true, "GetPolicyVersion": true, "ListPolicies": true, "DeletePolicy": true,
	"AttachUserPolicy": true, "DetachUserPolicy": true, "AttachRolePolicy": true, "DetachRolePolicy": true,
	"ListAttachedUserPolicies": true, "ListAttachedRolePolicies": true,
}

func (a *API) dispatch(r *http.Request, op string, form url.Values, sts bool) (any, error) {
	ctx := r.Context()
	if sts {
		return a.sts(ctx, op, form)
	}
	if op == "" {
		return nil, &wireError{400, "MissingAction", "Missing Action"}
	}
	if !iamOps[op] {
		return nil, &wireError{400, "InvalidAction", "Could not find operation " + op + " for version " + IAMVersion}
	}
	if err := a.iam.Authorize(ctx, "iam:"+op, a.resourceOf(r, op, form)); err != nil {
		return nil, err
	}
	switch op {
	case "CreateUser":
		if err := need(form, "UserName"); err != nil {
			return nil, err
		}
		e, err := a.iam.Create(ctx, &auth.Entity{Kind: auth.KindUser, Name: form.Get("UserName"), Path: form.Get("Path"), Tags: tags(form)})
		if err != nil {
			return nil, err
		}
		return struct{ User userXML }{toUser(e)}, nil
	case "GetUser":
		name := form.Get("UserName")
		if name == "" {
			p := auth.From(ctx)
			if p != nil && p.Kind == auth.Root {
				return struct{ User userXML }{userXML{Path: "/", UserName: "root", UserID: auth.Account, Arn: p.ARN, CreateDate: isoTime(a.iam.Root().Created)}}, nil
			}
			var err error
			if name, err = caller(ctx); err != nil {
				return nil, err
			}
		}
		e, _, err := a.iam.Get(auth.KindUser, name)
		if err != nil {
			return nil, err
		}
		return struct{ User userXML }{toUser(e)}, nil
	case "ListUsers":
		var out []userXML
		for _, e := range a.iam.List(auth.KindUser, form.Get("PathPrefix")) {
			out = append(out, toUser(e))
		}
		out, more, marker, err := page(out, form, func(u userXML) string { return u.UserName })
		if err != nil {
			return nil, err
		}
		return struct {
			Users       members[userXML]
			IsTruncated bool
			Marker      string `xml:",omitempty"`
		}{members[userXML]{out}, more, marker}, nil
	case "DeleteUser":
		if err := need(form, "UserName"); err != nil {
			return nil, err
		}
		return nil, a.iam.Delete(ctx, auth.KindUser, form.Get("UserName"))
	case "CreateAccessKey":
		name := form.Get("UserName")
		if name == "" {
			var err error
			if name, err = caller(ctx); err != nil {
				return nil, err
			}
		}
		k, err := a.iam.CreateAccessKey(ctx, name)
		if err != nil {
			return nil, err
		}
		return struct{ AccessKey accessKeyXML }{accessKeyXML{UserName: k.User, AccessKeyID: k.ID, Status: k.Status, SecretAccessKey: k.Secret, CreateDate: isoTime(k.Created)}}, nil
	case "ListAccessKeys":
		name := form.Get("UserName")
		if name == "" {
			var err error
			if name, err = caller(ctx); err != nil {
				return nil, err
			}
		}
		if _, _, err := a.iam.Get(auth.KindUser, name); err != nil {
			return nil, err
		}
		var out []accessKeyXML
		for _, k := range a.iam.AccessKeys(name) {
			out = append(out, accessKeyXML{UserName: k.User, AccessKeyID: k.ID, Status: k.Status, CreateDate: isoTime(k.Created)})
		}
		return struct {
			AccessKeyMetadata members[accessKeyXML]
			IsTruncated       bool
		}{AccessKeyMetadata: members[accessKeyXML]{out}}, nil
	case "DeleteAccessKey", "UpdateAccessKey":
		if err := need(form, "AccessKeyId"); err != nil {
			return nil, err
		}
		name := form.Get("UserName")
		if name == "" {
			var err error
			if name, err = caller(ctx); err != nil {
				return nil, err
			}
		}
		if op == "UpdateAccessKey" {
			return nil, a.iam.SetAccessKeyStatus(ctx, name, form.Get("AccessKeyId"), form.Get("Status"))
		}
		return nil, a.iam.DeleteAccessKey(ctx, name, form.Get("AccessKeyId"))
	case "CreateRole":
		if err := need(form, "RoleName", "AssumeRolePolicyDocument"); err != nil {
			return nil, err
		}
		maxSession, _ := strconv.Atoi(form.Get("MaxSessionDuration"))
		e, err := a.iam.Create(ctx, &auth.Entity{Kind: auth.KindRole, Name: form.Get("RoleName"), Path: form.Get("Path"),
			Trust: form.Get("AssumeRolePolicyDocument"), Description: form.Get("Description"), MaxSession: maxSession, Tags: tags(form)})
		if err != nil {
			return nil, err
		}
		return struct{ Role roleXML }{toRole(e)}, nil
	case "GetRole":
		if err := need(form, "RoleName"); err != nil {
			return nil, err
		}
		e, _, err := a.iam.Get(auth.KindRole, form.Get("RoleName"))
		if err != nil {
			return nil, err
		}
		return struct{ Role roleXML }{toRole(e)}, nil
	case "ListRoles":
		var out []roleXML
		for _, e := range a.iam.List(auth.KindRole, form.Get("PathPrefix")) {
			out = append(out, toRole(e))
		}
		out, more, marker, err := page(out, form, func(r roleXML) string { return r.RoleName })
		if err != nil {
			return nil, err
		}
		return struct {
			Roles       members[roleXML]
			IsTruncated bool
			Marker      string `xml:",omitempty"`
		}{members[roleXML]{out}, more, marker}, nil
	case "DeleteRole":
		if err := need(form, "RoleName"); err != nil {
			return nil, err
		}
		return nil, a.iam.Delete(ctx, auth.KindRole, form.Get("RoleName"))
	case "UpdateAssumeRolePolicy":
		if err := need(form, "RoleName", "PolicyDocument"); err != nil {
			return nil, err
		}
		doc := form.Get("PolicyDocument")
		if _, err := auth.ParsePolicy(doc, true); err != nil {
			return nil, err
		}
		_, err := a.iam.Update(ctx, auth.KindRole, form.Get("RoleName"), func(e *auth.Entity) error { e.Trust = doc; return nil })
		return nil, err
	case "PutUserPolicy", "PutRolePolicy":
		return nil, a.putInline(ctx, op, form)
	case "GetUserPolicy", "GetRolePolicy":
		kind, who := inlineOf(op, form)
		if err := need(form, who, "PolicyName"); err != nil {
			return nil, err
		}
		e, _, err := a.iam.Get(kind, form.Get(who))
		if err != nil {
			return nil, err
		}
		doc, ok := e.Inline[form.Get("PolicyName")]
		if !ok {
			return nil, &wireError{404, "NoSuchEntity", "The " + kind + " policy with name " + form.Get("PolicyName") + " cannot be found."}
		}
		if kind == auth.KindUser {
			return struct{ UserName, PolicyName, PolicyDocument string }{e.Name, form.Get("PolicyName"), encodeDoc(doc)}, nil
		}
		return struct{ RoleName, PolicyName, PolicyDocument string }{e.Name, form.Get("PolicyName"), encodeDoc(doc)}, nil
	case "DeleteUserPolicy", "DeleteRolePolicy":
		kind, who := inlineOf(op, form)
		if err := need(form, who, "PolicyName"); err != nil {
			return nil, err
		}
		_, err := a.iam.Update(ctx, kind, form.Get(who), func(e *auth.Entity) error {
			if _, ok := e.Inline[form.Get("PolicyName")]; !ok {
				return &wireError{404, "NoSuchEntity", "The " + kind + " policy with name " + form.Get("PolicyName") + " cannot be found."}
			}
			delete(e.Inline, form.Get("PolicyName"))
			return nil
		})
		return nil, err
	case "ListUserPolicies", "ListRolePolicies":
		kind, who := inlineOf(op, form)
		if err := need(form, who); err != nil {
			return nil, err
		}
		e, _, err := a.iam.Get(kind, form.Get(who))
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(e.Inline))
		for n := range e.Inline {
			names = append(names, n)
		}
		sort.Strings(names)
		return struct {
			PolicyNames members[string]
			IsTruncated bool
		}{PolicyNames: members[string]{names}}, nil
	case "CreatePolicy":
		if err := need(form, "PolicyName", "PolicyDocument"); err != nil {
			return nil, err
		}
		e, err := a.iam.Create(ctx, &auth.Entity{Kind: auth.KindPolicy, Name: form.Get("PolicyName"), Path: form.Get("Path"),
			Document: form.Get("PolicyDocument"), Description: form.Get("Description"), Tags: tags(form)})
		if err != nil {
			return nil, err
		}
		return struct{ Policy policyXML }{a.toPolicy(e)}, nil
	case "GetPolicy":
		if err := need(form, "PolicyArn"); err != nil {
			return nil, err
		}
		e, err := a.iam.Policy(form.Get("PolicyArn"))
		if err != nil {
			return nil, err
		}
		return struct{ Policy policyXML }{a.toPolicy(e)}, nil
	case "GetPolicyVersion":
		if err := need(form, "PolicyArn", "VersionId"); err != nil {
			return nil, err
		}
		e, err := a.iam.Policy(form.Get("PolicyArn"))
		if err != nil {
			return nil, err
		}
		if form.Get("VersionId") != "v1" {
			return nil, &wireError{404, "NoSuchEntity", "Policy " + e.ARN + " version " + form.Get("VersionId") + " does not exist or is not attachable."}
		}
		type version struct {
			Document         string
			VersionID        string `xml:"VersionId"`
			IsDefaultVersion bool
			CreateDate       string
		}
		p := a.toPolicy(e)
		return struct{ PolicyVersion version }{version{encodeDoc(e.Document), "v1", true, p.CreateDate}}, nil
	case "ListPolicies":
		var out []policyXML
		scope := form.Get("Scope")
		if scope == "" || scope == "All" || scope == "AWS" {
			for _, m := range auth.AWSManagedPolicies() {
				if e, err := a.iam.Policy(m.ARN); err == nil && strings.HasPrefix(e.Path, form.Get("PathPrefix")) {
					out = append(out, a.toPolicy(e))
				}
			}
		}
		if scope == "" || scope == "All" || scope == "Local" {
			for _, e := range a.iam.List(auth.KindPolicy, form.Get("PathPrefix")) {
				out = append(out, a.toPolicy(e))
			}
		}
		if form.Get("OnlyAttached") == "true" {
			out = slices.DeleteFunc(out, func(p policyXML) bool { return p.AttachmentCount == 0 })
		}
		out, more, marker, err := page(out, form, func(p policyXML) string { return p.Arn })
		if err != nil {
			return nil, err
		}
		return struct {
			Policies    members[policyXML]
			IsTruncated bool
			Marker      string `xml:",omitempty"`
		}{members[policyXML]{out}, more, marker}, nil
	case "DeletePolicy":
		if err := need(form, "PolicyArn"); err != nil {
			return nil, err
		}
		e, err := a.iam.Policy(form.Get("PolicyArn"))
		if err != nil {
			return nil, err
		}
		if auth.AWSManaged(e.ARN) != nil {
			return nil, &wireError{400, "InvalidInput", "AWS managed policies cannot be deleted"}
		}
		return nil, a.iam.Delete(ctx, auth.KindPolicy, e.Name)
	case "AttachUserPolicy", "AttachRolePolicy", "DetachUserPolicy", "DetachRolePolicy":
		kind, who := inlineOf(op, form)
		if err := need(form, who, "PolicyArn"); err != nil {
			return nil, err
		}
		arn := form.Get("PolicyArn")
		if _, err := a.iam.Policy(arn); err != nil {
			return nil, err
		}
		attach := strings.HasPrefix(op, "Attach")
		_, err := a.iam.Update(ctx, kind, form.Get(who), func(e *auth.Entity) error {
			i := slices.Index(e.Attached, arn)
			switch {
			case attach && i < 0:
				if len(e.Attached) >= 20 {
					return &wireError{409, "LimitExceeded", "Cannot exceed quota for PoliciesPerUser: 20"}
				}
				e.Attached = append(e.Attached, arn)
			case !attach && i < 0:
				return &wireError{404, "NoSuchEntity", "Policy " + arn + " was not found."}
			case !attach:
				e.Attached = slices.Delete(e.Attached, i, i+1)
			}
			return nil
		})
		return nil, err
	case "ListAttachedUserPolicies", "ListAttachedRolePolicies":
		kind, who := inlineOf(op, form)
		if err := need(form, who); err != nil {
			return nil, err
		}
		e, _, err := a.iam.Get(kind, form.Get(who))
		if err != nil {
			return nil, err
		}
		var out []attachedXML
		for _, arn := range e.Attached {
			if p, err := a.iam.Policy(arn); err == nil {
				out = append(out, attachedXML{p.Name, arn})
			}
		}
		return struct {
			AttachedPolicies members[attachedXML]
			IsTruncated      bool
		}{AttachedPolicies: members[attachedXML]{out}}, nil
	}
	return nil, &wireError{400, "InvalidAction", "Could not find operation " + op}
}

// page cuts a list at Marker (the key of its first item) and MaxItems
// (1 to 1,000, default 100), as IAM's List operations do.
func page[T any](items []T, form url.Values, key func(T) string) (out []T, truncated bool, next string, err error) {
	n := 100
	if v := form.Get("MaxItems"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 1000 {
			return nil, false, "", invalid("1 validation error detected: Value '" + v + "' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000")
		}
	}
	start := 0
	if m := form.Get("Marker"); m != "" {
		start = slices.IndexFunc(items, func(it T) bool { return key(it) == m })
		if start < 0 {
			return nil, false, "", invalid("Invalid Marker")
		}
	}
	items = items[start:]
	if len(items) > n {
		return items[:n], true, key(items[n]), nil
	}
	return items, false, "", nil
}

// inlineOf says whose policy an operation is about: a user's or a role's,
// and the form field that names it.
func inlineOf(op string, _ url.Values) (kind, field string) {
	if strings.Contains(op, "Role") {
		return auth.KindRole, "RoleName"
	}
	return auth.KindUser, "UserName"
}

func (a *API) putInline(ctx context.Context, op string, form url.Values) error {
	kind, who := inlineOf(op, form)
	if err := need(form, who, "PolicyName", "PolicyDocument"); err != nil {
		return err
	}
	name, doc := form.Get("PolicyName"), form.Get("PolicyDocument")
	if len(name) > 128 || strings.ContainsAny(name, " /") {
		return &wireError{400, "ValidationError", "The specified value for policyName is invalid."}
	}
	if len(doc) > 10240 {
		return &wireError{409, "LimitExceeded", "Maximum policy size of 10240 bytes exceeded for " + kind + " " + form.Get(who)}
	}
	if err := auth.ValidatePolicy(doc); err != nil {
		return err
	}
	_, err := a.iam.Update(ctx, kind, form.Get(who), func(e *auth.Entity) error {
		if e.Inline == nil {
			e.Inline = map[string]string{}
		}
		e.Inline[name] = doc
		return nil
	})
	return err
}

// tags reads Tags.member.N.Key/Value.
func tags(form url.Values) map[string]string {
	var out map[string]string
	for i := 1; ; i++ {
		k := form.Get("Tags.member." + strconv.Itoa(i) + ".Key")
		if k == "" {
			return out
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = form.Get("Tags.member." + strconv.Itoa(i) + ".Value")
	}
}

// sts serves the two STS operations Stratus has.
func (a *API) sts(ctx context.Context, op string, form url.Values) (any, error) {
	p := auth.From(ctx)
	switch op {
	case "GetCallerIdentity":
		// Needs no permission, as on AWS.
		return struct {
			Arn     string
			UserID  string `xml:"UserId"`
			Account string
		}{p.ARN, p.UserID, auth.Account}, nil
	case "AssumeRole":
		if err := need(form, "RoleArn", "RoleSessionName"); err != nil {
			return nil, err
		}
		name := form.Get("RoleSessionName")
		if len(name) < 2 || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@-_") != "" {
			return nil, invalid("1 validation error detected: Value '" + name + "' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*")
		}
		secs, _ := strconv.Atoi(form.Get("DurationSeconds"))
		creds, role, err := a.iam.AssumeRole(ctx, form.Get("RoleArn"), name, time.Duration(secs)*time.Second)
		if err != nil {
			return nil, err
		}
		type credentials struct {
			AccessKeyID     string `xml:"AccessKeyId"`
			SecretAccessKey string
			SessionToken    string
			Expiration      string
		}
		type assumed struct {
			AssumedRoleID string `xml:"AssumedRoleId"`
			Arn           string
		}
		return struct {
			Credentials     credentials
			AssumedRoleUser assumed
		}{
			credentials{creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken, isoTime(creds.Expiration)},
			assumed{role.ID + ":" + name, "arn:aws:sts::" + auth.Account + ":assumed-role/" + role.Name + "/" + name},
		}, nil
	case "":
		return nil, &wireError{400, "MissingAction", "Missing Action"}
	}
	return nil, &wireError{400, "InvalidAction", "Could not find operation " + op + " for version " + STSVersion}
}
