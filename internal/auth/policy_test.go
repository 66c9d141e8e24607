package auth

import (
	"errors"
	"testing"
)

func TestEvaluate(t *testing.T) {
	user := &Principal{Kind: User, ARN: "arn:aws:iam::000000000000:user/bob", Name: "bob"}
	fn := "arn:aws:lambda:us-east-1:000000000000:function:orders"
	tests := []struct {
		name   string
		doc    string
		action string
		res    string
		ctx    map[string][]string
		want   Effect
	}{
		{"allow exact", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"lambda:InvokeFunction","Resource":"` + fn + `"}}`, "lambda:InvokeFunction", fn, nil, Allowed},
		{"action case-insensitive", `{"Statement":[{"Effect":"Allow","Action":"LAMBDA:invoke*","Resource":"*"}]}`, "lambda:InvokeFunction", fn, nil, Allowed},
		{"resource case-sensitive", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:lambda:*:*:function:Orders"}]}`, "lambda:InvokeFunction", fn, nil, NoMatch},
		{"qualified resource needs its own pattern", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"` + fn + `"}]}`, "lambda:InvokeFunction", fn + ":live", nil, NoMatch},
		{"question mark", `{"Statement":[{"Effect":"Allow","Action":"sqs:?eceiveMessage","Resource":"*"}]}`, "sqs:ReceiveMessage", "x", nil, Allowed},
		{"deny wins", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"lambda:Delete*","Resource":"*"}]}`, "lambda:DeleteFunction", fn, nil, DeniedExplicitly},
		{"not action", `{"Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}`, "iam:CreateUser", "*", nil, NoMatch},
		{"not action allows others", `{"Statement":[{"Effect":"Allow","NotAction":["iam:*"],"Resource":"*"}]}`, "sqs:SendMessage", "q", nil, Allowed},
		{"not resource", `{"Statement":[{"Effect":"Allow","Action":"sqs:*","NotResource":"arn:aws:sqs:*:*:secret"}]}`, "sqs:SendMessage", "arn:aws:sqs:us-east-1:000000000000:secret", nil, NoMatch},
		{"string equals", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":"bob"}}}]}`, "x:y", "r", map[string][]string{"aws:username": {"bob"}}, Allowed},
		{"condition key case-insensitive", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"AWS:UserName":"bob"}}}]}`, "x:y", "r", map[string][]string{"aws:username": {"bob"}}, Allowed},
		{"string equals mismatch", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:username":["al","cy"]}}}]}`, "x:y", "r", map[string][]string{"aws:username": {"bob"}}, NoMatch},
		{"missing key", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:SourceArn":"a"}}}]}`, "x:y", "r", nil, NoMatch},
		{"missing key negated", `{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceArn":"a"}}}]}`, "x:y", "r", nil, DeniedExplicitly},
		{"if exists", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:SourceArn":"a"}}}]}`, "x:y", "r", nil, Allowed},
		{"arn like", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:execute-api:us-east-1:000000000000:abc/*"}}}]}`, "x:y", "r", map[string][]string{"aws:sourcearn": {"arn:aws:execute-api:us-east-1:000000000000:abc/*/GET/x"}}, Allowed},
		{"bool secure transport", `{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}]}`, "x:y", "r", map[string][]string{"aws:securetransport": {"false"}}, DeniedExplicitly},
		{"numeric", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s:n":"10"}}}]}`, "x:y", "r", map[string][]string{"s:n": {"9.5"}}, Allowed},
		{"numeric not", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s:n":10}}}]}`, "x:y", "r", map[string][]string{"s:n": {"10"}}, NoMatch},
		{"ip", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}]}`, "x:y", "r", map[string][]string{"aws:sourceip": {"127.0.0.2"}}, Allowed},
		{"null", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:SourceArn":"true"}}}]}`, "x:y", "r", nil, Allowed},
		{"two keys are and", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a:b":"1","c:d":"2"}}}]}`, "x:y", "r", map[string][]string{"a:b": {"1"}}, NoMatch},
		{"for any value", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringLike":{"t:k":["a*"]}}}]}`, "x:y", "r", map[string][]string{"t:k": {"x", "ab"}}, Allowed},
		{"for all values", `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"t:k":["a","b"]}}}]}`, "x:y", "r", map[string][]string{"t:k": {"a", "c"}}, NoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy(tt.doc, false)
			if err != nil {
				t.Fatal(err)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = map[string][]string{}
			}
			if got := p.Evaluate(&Request{Action: tt.action, Resource: tt.res, Principal: user, Context: ctx}); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	for _, doc := range []string{
		``, `{}`, `{"Statement":[]`, `{"Version":"2099-01-01","Statement":[]}`,
		`{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"x:y","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"invoke","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringSortOf":{"a:b":"c"}}}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericEquals":{"a:b":"ten"}}}]}`,
	} {
		if _, err := ParsePolicy(doc, false); !errors.Is(err, ErrMalformedPolicy) {
			t.Errorf("%s: got %v, want a malformed policy", doc, err)
		}
	}
}

func TestTrustPolicyPrincipals(t *testing.T) {
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["lambda.amazonaws.com"]},"Action":"sts:AssumeRole"},
	  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/ops"},"Action":"sts:AssumeRole"}]}`
	p, err := ParsePolicy(trust, true)
	if err != nil {
		t.Fatal(err)
	}
	ops := &Principal{Kind: User, ARN: "arn:aws:iam::000000000000:user/ops"}
	bob := &Principal{Kind: User, ARN: "arn:aws:iam::000000000000:user/bob"}
	for _, tt := range []struct {
		req  Request
		want Effect
	}{
		{Request{Action: "sts:AssumeRole", Service: "lambda.amazonaws.com"}, Allowed},
		{Request{Action: "sts:AssumeRole", Service: "apigateway.amazonaws.com"}, NoMatch},
		{Request{Action: "sts:AssumeRole", Principal: ops}, Allowed},
		{Request{Action: "sts:AssumeRole", Principal: bob}, NoMatch},
	} {
		if got := p.Evaluate(&tt.req); got != tt.want {
			t.Errorf("%+v: got %v, want %v", tt.req, got, tt.want)
		}
	}
}

func TestWildcard(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false}, {"a?c", "abc", true},
		{"*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, {"", "", true}, {"", "a", false},
	} {
		if got := Wildcard(tt.p, tt.s, false); got != tt.want {
			t.Errorf("Wildcard(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func FuzzPolicy(f *testing.F) {
	f.Add(`{"Statement":[{"Effect":"Allow","Action":"lambda:*","Resource":"*","Condition":{"StringLike":{"aws:SourceArn":"a*"}}}]}`, "lambda:InvokeFunction", "arn:x", "aaa")
	f.Add(`{"Statement":{"Effect":"Deny","NotAction":["s3:*"],"NotResource":"*?*"}}`, "sqs:SendMessage", "q", "")
	f.Fuzz(func(t *testing.T, doc, action, resource, src string) {
		p, err := ParsePolicy(doc, false)
		if err != nil {
			if !errors.Is(err, ErrMalformedPolicy) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		req := &Request{Action: action, Resource: resource, Principal: &Principal{Kind: User}, Context: map[string][]string{"aws:sourcearn": {src}}}
		got := p.Evaluate(req)
		// Adding a deny-everything statement always denies.
		p.Statements = append(p.Statements, Statement{Action: []string{"*"}, Resource: []string{"*"}})
		if p.Evaluate(req) != DeniedExplicitly {
			t.Fatalf("a Deny of everything did not deny (first answer %v)", got)
		}
	})
}
