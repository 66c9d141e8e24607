package sqs

import (
	"net/url"
	"strings"
	"testing"
)

func TestFromQuery(t *testing.T) {
	form, _ := url.ParseQuery(strings.Join([]string{
		"Action=SendMessageBatch", "QueueUrl=http://h/000000000000/q",
		"SendMessageBatchRequestEntry.2.Id=b", "SendMessageBatchRequestEntry.2.MessageBody=two",
		"SendMessageBatchRequestEntry.1.Id=a", "SendMessageBatchRequestEntry.1.MessageBody=one",
		"SendMessageBatchRequestEntry.1.DelaySeconds=5",
		"SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k",
		"SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=Binary",
		"SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.BinaryValue=AAEC",
		"Attribute.1.Name=VisibilityTimeout", "Attribute.1.Value=9",
		"AttributeName.1=All", "MessageAttributeName.1=k.*", "Tag.1.Key=team", "Tag.1.Value=x",
		"MaxNumberOfMessages=10",
	}, "&"))
	req, werr := fromQuery(form)
	if werr != nil {
		t.Fatal(werr)
	}
	if len(req.Entries) != 2 || req.Entries[0].ID != "a" || *req.Entries[0].DelaySeconds != 5 || *req.Entries[1].MessageBody != "two" {
		t.Fatalf("entries %+v", req.Entries)
	}
	if a := req.Entries[0].MessageAttributes["k"]; a.DataType != "Binary" || string(a.BinaryValue) != "\x00\x01\x02" {
		t.Fatalf("attribute %+v", a)
	}
	if req.Attributes["VisibilityTimeout"] != "9" || req.AttributeNames[0] != "All" || req.MessageAttributeNames[0] != "k.*" ||
		req.Tags["team"] != "x" || *req.MaxNumberOfMessages != 10 || req.QueueURL != "http://h/000000000000/q" {
		t.Fatalf("request %+v", req)
	}
	for _, bad := range []string{"MaxNumberOfMessages=ten", "MessageAttribute.1.Name=k&MessageAttribute.1.Value.BinaryValue=!!"} {
		f, _ := url.ParseQuery(bad)
		if _, werr := fromQuery(f); werr == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestQueueName(t *testing.T) {
	for u, want := range map[string]string{
		"http://127.0.0.1:9000/000000000000/orders":  "orders",
		"https://other.example/000000000000/orders/": "orders",
		"orders": "",
		"":       "",
	} {
		got, werr := queueName(&request{QueueURL: u})
		if got != want || (want == "") != (werr != nil) {
			t.Errorf("%q: %q %v", u, got, werr)
		}
	}
}

func FuzzFromQuery(f *testing.F) {
	f.Add("Action=SendMessage&MessageBody=x&MessageAttribute.1.Name=a&MessageAttribute.1.Value.StringValue=b")
	f.Add("SendMessageBatchRequestEntry.99999999999999999999.Id=a&Attribute.-1.Name=x&Tag..Key=")
	f.Fuzz(func(t *testing.T, q string) {
		form, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		_, _ = fromQuery(form)
	})
}
