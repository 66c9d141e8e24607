package function

import (
	"encoding/json"
	"regexp"
	"strings"
)

// ResourcePolicy is a function's resource-based policy (of the function,
// or of one version or alias): the statements AddPermission added.
type ResourcePolicy struct {
	Function   string      `json:"function"`
	Qualifier  string      `json:"qualifier,omitempty"`
	Statements []Statement `json:"statements"`
	RevisionID string      `json:"revisionId"`
}

// Statement is one permission, in IAM's policy grammar.
type Statement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Principal any                          `json:"Principal"`
	Action    string                       `json:"Action"`
	Resource  string                       `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// Document is the policy as GetPolicy returns it (a JSON string).
func (p *ResourcePolicy) Document() string {
	b, _ := json.Marshal(struct {
		Version   string      `json:"Version"`
		ID        string      `json:"Id"`
		Statement []Statement `json:"Statement"`
	}{"2012-10-17", "default", p.Statements})
	return string(b)
}

// Permission is what AddPermission asks for.
type Permission struct {
	StatementID           string
	Action                string
	Principal             string
	SourceArn             string
	SourceAccount         string
	FunctionURLAuthType   string
	InvokedViaFunctionURL bool
	PrincipalOrgID        string
}

var (
	sidRE    = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,100}$`)
	actionRE = regexp.MustCompile(`^(lambda:[*]|lambda:[a-zA-Z]+|[*])$`)
)

// Statement validates p and renders it for resource arn.
func (p Permission) Statement(arn string) (Statement, error) {
	if !sidRE.MatchString(p.StatementID) {
		return Statement{}, invalidf("1 validation error detected: Value '%s' at 'statementId' failed to satisfy constraint: Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)", p.StatementID)
	}
	if !actionRE.MatchString(p.Action) {
		return Statement{}, invalidf("1 validation error detected: Value '%s' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])", p.Action)
	}
	st := Statement{Sid: p.StatementID, Effect: "Allow", Action: p.Action, Resource: arn}
	switch {
	case p.Principal == "*":
		st.Principal = "*"
	case regexp.MustCompile(`^\d{12}$`).MatchString(p.Principal):
		st.Principal = map[string]string{"AWS": "arn:aws:iam::" + p.Principal + ":root"}
	case strings.HasPrefix(p.Principal, "arn:aws:iam::") || strings.HasPrefix(p.Principal, "arn:aws:sts::"):
		st.Principal = map[string]string{"AWS": p.Principal}
	case strings.HasSuffix(p.Principal, ".amazonaws.com") || strings.HasSuffix(p.Principal, ".amazonaws.com.cn"):
		st.Principal = map[string]string{"Service": p.Principal}
	default:
		return Statement{}, invalidf("The provided principal was invalid. Please check the principal and try again.")
	}
	cond := map[string]map[string]string{}
	add := func(op, k, v string) {
		if cond[op] == nil {
			cond[op] = map[string]string{}
		}
		cond[op][k] = v
	}
	if p.SourceArn != "" {
		add("ArnLike", "AWS:SourceArn", p.SourceArn)
	}
	if p.SourceAccount != "" {
		add("StringEquals", "AWS:SourceAccount", p.SourceAccount)
	}
	if p.PrincipalOrgID != "" {
		add("StringEquals", "aws:PrincipalOrgID", p.PrincipalOrgID)
	}
	if p.FunctionURLAuthType != "" {
		if p.FunctionURLAuthType != URLAuthNone && p.FunctionURLAuthType != URLAuthIAM {
			return Statement{}, invalidf("FunctionUrlAuthType must be NONE or AWS_IAM")
		}
		add("StringEquals", "lambda:FunctionUrlAuthType", p.FunctionURLAuthType)
	}
	if p.InvokedViaFunctionURL {
		add("Bool", "lambda:InvokedViaFunctionUrl", "true")
	}
	if len(cond) > 0 {
		st.Condition = cond
	}
	return st, nil
}
