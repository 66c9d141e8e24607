package sqs

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/stratus-faas/stratus/internal/queue"
)

// node is a form parameter tree: "Entry.1.Id" is kids["Entry"].kids["1"].kids["Id"].
type node struct {
	val  string
	kids map[string]*node
}

func (n *node) child(k string) *node {
	if n == nil {
		return nil
	}
	return n.kids[k]
}

func (n *node) str(k string) string {
	if c := n.child(k); c != nil {
		return c.val
	}
	return ""
}

// list returns the numbered children in order ("X.1", "X.2", ...).
func (n *node) list() []*node {
	if n == nil {
		return nil
	}
	idx := make([]int, 0, len(n.kids))
	for k := range n.kids {
		if i, err := strconv.Atoi(k); err == nil && i > 0 {
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	out := make([]*node, 0, len(idx))
	for _, i := range idx {
		out = append(out, n.kids[strconv.Itoa(i)])
	}
	return out
}

func tree(form url.Values) *node {
	root := &node{kids: map[string]*node{}}
	for k, vs := range form {
		cur := root
		for _, part := range strings.Split(k, ".") {
			next := cur.kids[part]
			if next == nil {
				next = &node{kids: map[string]*node{}}
				cur.kids[part] = next
			}
			cur = next
		}
		if len(vs) > 0 {
			cur.val = vs[0]
		}
	}
	return root
}

// fromQuery decodes a query-protocol form into the request shape.
func fromQuery(form url.Values) (*request, *wireError) {
	t := tree(form)
	req := &request{
		QueueName:       t.str("QueueName"),
		QueueURL:        t.str("QueueUrl"),
		QueueNamePrefix: t.str("QueueNamePrefix"),
		NextToken:       t.str("NextToken"),
		ReceiptHandle:   t.str("ReceiptHandle"),
	}
	if c := t.child("MessageBody"); c != nil {
		s := c.val
		req.MessageBody = &s
	}
	var werr *wireError
	ints := []struct {
		name string
		dst  **int
	}{
		{"MaxResults", &req.MaxResults}, {"DelaySeconds", &req.DelaySeconds},
		{"MaxNumberOfMessages", &req.MaxNumberOfMessages}, {"VisibilityTimeout", &req.VisibilityTimeout},
		{"WaitTimeSeconds", &req.WaitTimeSeconds},
	}
	for _, f := range ints {
		if *f.dst, werr = optInt(t, f.name); werr != nil {
			return nil, werr
		}
	}
	req.Attributes = pairs(t.child("Attribute"), "Name", "Value")
	req.Tags = pairs(t.child("Tag"), "Key", "Value")
	req.AttributeNames = values(t.child("AttributeName"))
	req.MessageSystemAttributeNames = values(t.child("MessageSystemAttributeName"))
	req.MessageAttributeNames = values(t.child("MessageAttributeName"))
	req.TagKeys = values(t.child("TagKey"))
	if req.MessageAttributes, werr = attributes(t.child("MessageAttribute")); werr != nil {
		return nil, werr
	}
	if req.MessageSystemAttributes, werr = attributes(t.child("MessageSystemAttribute")); werr != nil {
		return nil, werr
	}
	for _, kind := range []string{"SendMessageBatchRequestEntry", "DeleteMessageBatchRequestEntry", "ChangeMessageVisibilityBatchRequestEntry"} {
		for _, e := range t.child(kind).list() {
			be := batchEntry{ID: e.str("Id"), ReceiptHandle: e.str("ReceiptHandle")}
			if c := e.child("MessageBody"); c != nil {
				s := c.val
				be.MessageBody = &s
			}
			if be.DelaySeconds, werr = optInt(e, "DelaySeconds"); werr != nil {
				return nil, werr
			}
			if be.VisibilityTimeout, werr = optInt(e, "VisibilityTimeout"); werr != nil {
				return nil, werr
			}
			if be.MessageAttributes, werr = attributes(e.child("MessageAttribute")); werr != nil {
				return nil, werr
			}
			if be.MessageSystemAttributes, werr = attributes(e.child("MessageSystemAttribute")); werr != nil {
				return nil, werr
			}
			req.Entries = append(req.Entries, be)
		}
	}
	return req, nil
}

func optInt(t *node, name string) (*int, *wireError) {
	c := t.child(name)
	if c == nil {
		return nil, nil
	}
	n, err := strconv.Atoi(c.val)
	if err != nil {
		return nil, clientErr("InvalidParameterValue", "InvalidParameterValue", "Value "+c.val+" for parameter "+name+" is invalid. Reason: must be an integer.")
	}
	return &n, nil
}

func pairs(n *node, key, val string) map[string]string {
	items := n.list()
	if len(items) == 0 {
		return nil
	}
	out := make(map[string]string, len(items))
	for _, it := range items {
		out[it.str(key)] = it.str(val)
	}
	return out
}

func values(n *node) []string {
	var out []string
	for _, it := range n.list() {
		out = append(out, it.val)
	}
	return out
}

func attributes(n *node) (map[string]queue.Attribute, *wireError) {
	items := n.list()
	if len(items) == 0 {
		return nil, nil
	}
	out := make(map[string]queue.Attribute, len(items))
	for _, it := range items {
		v := it.child("Value")
		a := queue.Attribute{DataType: v.str("DataType")}
		if c := v.child("StringValue"); c != nil {
			s := c.val
			a.StringValue = &s
		}
		if c := v.child("BinaryValue"); c != nil {
			b, err := base64.StdEncoding.DecodeString(c.val)
			if err != nil {
				return nil, clientErr("InvalidParameterValue", "InvalidParameterValue", "Message attribute "+it.str("Name")+" has an invalid base64 BinaryValue.")
			}
			a.BinaryValue = b
		}
		out[it.str("Name")] = a
	}
	return out, nil
}

// xmlBuf writes the query protocol's XML.
type xmlBuf struct{ bytes.Buffer }

func (b *xmlBuf) open(tag string)  { b.WriteString("<" + tag + ">") }
func (b *xmlBuf) close(tag string) { b.WriteString("</" + tag + ">") }
func (b *xmlBuf) raw(s string)     { b.WriteString(s) }

func (b *xmlBuf) elem(tag, text string) {
	b.open(tag)
	_ = xml.EscapeText(b, []byte(text))
	b.close(tag)
}

func (b *xmlBuf) nameValues(tag string, m map[string]string, k, v string) {
	ks := make([]string, 0, len(m))
	for key := range m {
		ks = append(ks, key)
	}
	sort.Strings(ks)
	for _, key := range ks {
		b.open(tag)
		b.elem(k, key)
		b.elem(v, m[key])
		b.close(tag)
	}
}

func (b *xmlBuf) failed(fs []batchError) {
	for _, f := range fs {
		b.open("BatchResultErrorEntry")
		b.elem("Id", f.ID)
		b.elem("SenderFault", strconv.FormatBool(f.SenderFault))
		b.elem("Code", f.Code)
		b.elem("Message", f.Message)
		b.close("BatchResultErrorEntry")
	}
}

func (b *xmlBuf) sendResult(s sendOut) {
	if s.ID != "" {
		b.elem("Id", s.ID)
	}
	b.elem("MessageId", s.MessageID)
	b.elem("MD5OfMessageBody", s.MD5OfBody)
	if s.MD5OfAttributes != "" {
		b.elem("MD5OfMessageAttributes", s.MD5OfAttributes)
	}
	if s.MD5OfSystemAttrs != "" {
		b.elem("MD5OfMessageSystemAttributes", s.MD5OfSystemAttrs)
	}
}

// toXML renders an operation's result for query clients.
func toXML(op string, out any, rid string) []byte {
	var b xmlBuf
	b.raw(`<?xml version="1.0"?><` + op + `Response xmlns="http://queue.amazonaws.com/doc/2012-11-05/">`)
	b.open(op + "Result")
	switch o := out.(type) {
	case *queueURLOut:
		b.elem("QueueUrl", o.QueueURL)
	case *listOut:
		for _, u := range o.QueueURLs {
			b.elem("QueueUrl", u)
		}
		if o.NextToken != "" {
			b.elem("NextToken", o.NextToken)
		}
	case *dlSourcesOut:
		for _, u := range o.QueueURLs {
			b.elem("QueueUrl", u)
		}
	case *attrsOut:
		b.nameValues("Attribute", o.Attributes, "Name", "Value")
	case *tagsOut:
		b.nameValues("Tag", o.Tags, "Key", "Value")
	case *sendOut:
		b.sendResult(*o)
	case *sendBatchOut:
		for _, s := range o.Successful {
			b.open("SendMessageBatchResultEntry")
			b.sendResult(s)
			b.close("SendMessageBatchResultEntry")
		}
		b.failed(o.Failed)
	case *idsOut:
		for _, s := range o.Successful {
			b.open(o.kind)
			b.elem("Id", s.ID)
			b.close(o.kind)
		}
		b.failed(o.Failed)
	case *receiveOut:
		for _, m := range o.Messages {
			b.open("Message")
			b.elem("MessageId", m.MessageID)
			b.elem("ReceiptHandle", m.ReceiptHandle)
			b.elem("MD5OfBody", m.MD5OfBody)
			b.elem("Body", m.Body)
			b.nameValues("Attribute", m.Attributes, "Name", "Value")
			if m.MD5OfAttributes != "" {
				b.elem("MD5OfMessageAttributes", m.MD5OfAttributes)
			}
			names := make([]string, 0, len(m.MessageAttributes))
			for k := range m.MessageAttributes {
				names = append(names, k)
			}
			sort.Strings(names)
			for _, k := range names {
				v := m.MessageAttributes[k]
				b.open("MessageAttribute")
				b.elem("Name", k)
				b.open("Value")
				if v.StringValue != nil {
					b.elem("StringValue", *v.StringValue)
				}
				if v.BinaryValue != nil {
					b.elem("BinaryValue", base64.StdEncoding.EncodeToString(v.BinaryValue))
				}
				b.elem("DataType", v.DataType)
				b.close("Value")
				b.close("MessageAttribute")
			}
			b.close("Message")
		}
	}
	b.close(op + "Result")
	b.raw("<ResponseMetadata><RequestId>" + rid + "</RequestId></ResponseMetadata></" + op + "Response>")
	return b.Bytes()
}
