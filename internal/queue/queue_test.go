package queue

import (
	"strings"
	"testing"
)

func TestAttributesApply(t *testing.T) {
	cases := []struct {
		in   map[string]string
		want error
	}{
		{map[string]string{"VisibilityTimeout": "0"}, nil},
		{map[string]string{"VisibilityTimeout": "43200"}, nil},
		{map[string]string{"VisibilityTimeout": "43201"}, ErrInvalidAttrValue},
		{map[string]string{"VisibilityTimeout": "x"}, ErrInvalidAttrValue},
		{map[string]string{"MessageRetentionPeriod": "59"}, ErrInvalidAttrValue},
		{map[string]string{"DelaySeconds": "901"}, ErrInvalidAttrValue},
		{map[string]string{"ReceiveMessageWaitTimeSeconds": "21"}, ErrInvalidAttrValue},
		{map[string]string{"MaximumMessageSize": "1023"}, ErrInvalidAttrValue},
		{map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":"3"}`}, nil},
		{map[string]string{"RedrivePolicy": `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:d","maxReceiveCount":0}`}, ErrInvalidParameter},
		{map[string]string{"RedrivePolicy": `{"maxReceiveCount":3}`}, ErrInvalidParameter},
		{map[string]string{"RedrivePolicy": `not json`}, ErrInvalidParameter},
		{map[string]string{"Policy": `{}`}, nil},
		{map[string]string{"FifoQueue": "true"}, ErrInvalidAttrName},
		{map[string]string{"Nope": "1"}, ErrInvalidAttrName},
	}
	for _, c := range cases {
		a := defaults()
		err := a.apply(c.in, "us-east-1")
		if (c.want == nil) != (err == nil) || (c.want != nil && !strings.Contains(err.Error(), c.want.Error())) {
			t.Errorf("%v: got %v, want %v", c.in, err, c.want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"orders": true, "a-b_c": true, strings.Repeat("x", 80): true,
		"": false, strings.Repeat("x", 81): false, "a.b": false, "q.fifo": false, "sp ace": false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestAttributesMD5(t *testing.T) {
	s := func(v string) *string { return &v }
	cases := []struct {
		attrs map[string]Attribute
		want  string
	}{
		{nil, ""},
		// Regression values, accepted by botocore's checks in the end-to-end tests.
		{map[string]Attribute{"a": {DataType: "String", StringValue: s("x")}}, "a512aac9938034acb0b3c3d965944bf1"},
		{map[string]Attribute{"n": {DataType: "Number", StringValue: s("42")}, "b": {DataType: "Binary", BinaryValue: []byte{0, 1, 2}}}, "c73ae9c44eb7ec813f0f17d34dc05181"},
	}
	for _, c := range cases {
		if got := AttributesMD5(c.attrs); got != c.want {
			t.Errorf("%v: %s, want %s", c.attrs, got, c.want)
		}
	}
}

func TestValidBody(t *testing.T) {
	for body, ok := range map[string]bool{"plain": true, "tab\tnl\ncr\r": true, "é ✓ 😀": true, "bell\x07": false, "\x00": false, "bad\xff": false} {
		if validBody(body) != ok {
			t.Errorf("%q: want %v", body, ok)
		}
	}
}

func TestHandleRoundTrip(t *testing.T) {
	h := handle{Queue: "q", Seq: 7, Delivery: 2, Deadline: 123, Reply: "$JS.ACK.SQS_q.sqs.2.7.9.1.0"}
	got, err := decodeHandle("q", h.encode())
	if err != nil || *got != h {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	for _, bad := range []string{"", "!!", h.encode() + "x"} {
		if _, err := decodeHandle("q", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := decodeHandle("other", h.encode()); err == nil {
		t.Error("a handle of another queue was accepted")
	}
	forged := handle{Queue: "q", Seq: 1, Delivery: 1, Reply: "$JS.ACK.SQS_other.sqs.1.1.1.1.0"}
	if _, err := decodeHandle("q", forged.encode()); err == nil {
		t.Error("a handle acking another stream was accepted")
	}
}

func FuzzDecodeHandle(f *testing.F) {
	f.Add((&handle{Queue: "q", Seq: 1, Delivery: 1, Reply: "$JS.ACK.SQS_q.sqs.1.1.1.1.0"}).encode())
	f.Add("eyJxIjoicSJ9")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := decodeHandle("q", s)
		if err == nil && (h.Queue != "q" || h.Seq == 0 || !strings.Contains(h.Reply, ".SQS_q.sqs.")) {
			t.Fatalf("accepted %+v", h)
		}
	})
}
