// Command porcupine-harness prints Porcupine's verdict for faultline JSON
// Lines histories: one line per file, "ok", "illegal" or "unknown".
//
// Test-only: tests/porcupine_diff.rs builds it against a checkout of the
// Porcupine module and compares its verdicts with faultline's. The mapping
// of faultline's semantics to Porcupine's (docs/porcupine-differential.md):
//
//   - operations are ordered by their position in the file: an invocation at
//     line i is called at time i, its completion at line j returns at j;
//   - ok: the operation happened, with its result;
//   - fail: it did not happen: left out;
//   - info, or an invocation never completed: the outcome is unknown. A
//     read is left out (it constrains nothing); a write, put or append
//     returns at +inf (Porcupine may place it anywhere after its call,
//     including after everything, which is "never happened"); a cas returns
//     at +inf and applies when its expected value is there, and otherwise
//     does nothing (placing it at the end is again "never happened");
//   - registers start as -initial (default null); kv keys start absent: a
//     get of null needs an absent key, an append to an absent key appends to
//     "" (faultline's kv model).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

type event struct {
	Process json.RawMessage `json:"process"`
	Type    string          `json:"type"`
	F       string          `json:"f"`
	Key     json.RawMessage `json:"key"`
	Value   json.RawMessage `json:"value"`
}

// input of one operation: values as compact JSON text.
type input struct {
	f, key, value, from, to string
	known                   bool // the outcome is known
}

// kvState is a key's value: absent, or a JSON value as text.
type kvState struct {
	set  bool
	text string
}

func compact(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func jsonString(text string) (string, bool) {
	var s string
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return "", false
	}
	return s, true
}

func isRead(f string) bool { return f == "read" || f == "get" || f == "r" }

func isWrite(f string) bool { return f == "write" || f == "put" || f == "w" }

func step(state interface{}, in interface{}, out interface{}) (bool, interface{}) {
	s := state.(kvState)
	i := in.(input)
	switch i.f {
	case "read", "get", "r":
		r := out.(string)
		if r == "null" {
			return !s.set || s.text == "null", s
		}
		return s.set && s.text == r, s
	case "write", "put", "w":
		return true, kvState{true, i.value}
	case "cas", "compare-and-set":
		cur := "null"
		if s.set {
			cur = s.text
		}
		if cur == i.from {
			return true, kvState{true, i.to}
		}
		// An unknown cas that finds another value does nothing.
		return !i.known, s
	case "append":
		base := ""
		if s.set {
			b, ok := jsonString(s.text)
			if !ok {
				return false, s
			}
			base = b
		}
		piece, ok := jsonString(i.value)
		if !ok {
			return false, s
		}
		joined, _ := json.Marshal(base + piece)
		return true, kvState{true, string(joined)}
	}
	return false, s
}

func history(path string) ([]porcupine.Operation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type open struct {
		at int64
		ev event
	}
	inFlight := map[string]open{}
	var ops []porcupine.Operation
	add := func(o open, ret int64, result string, kind string) {
		ev := o.ev
		in := input{f: ev.F, key: compact(ev.Key), value: compact(ev.Value), known: kind == "ok"}
		if kind == "fail" {
			return
		}
		if isRead(ev.F) && kind != "ok" {
			return
		}
		if ev.F == "cas" || ev.F == "compare-and-set" {
			var pair []json.RawMessage
			if err := json.Unmarshal(ev.Value, &pair); err == nil && len(pair) == 2 {
				in.from, in.to = compact(pair[0]), compact(pair[1])
			}
		}
		if kind != "ok" {
			ret = math.MaxInt64
		}
		ops = append(ops, porcupine.Operation{Input: in, Call: o.at, Output: result, Return: ret})
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	var line int64
	for sc.Scan() {
		line++
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		var process json.Number
		if json.Unmarshal(ev.Process, &process) != nil {
			// Not a client (a "nemesis" fault event): faultline leaves it
			// out of every check, and so does this.
			continue
		}
		p := process.String()
		if ev.Type == "invoke" {
			inFlight[p] = open{line, ev}
			continue
		}
		o, ok := inFlight[p]
		if !ok {
			return nil, fmt.Errorf("%s:%d: a completion without an invocation", path, line)
		}
		delete(inFlight, p)
		if len(o.ev.Key) == 0 {
			// faultline takes the key of the completion when the
			// invocation has none.
			o.ev.Key = ev.Key
		}
		result := compact(ev.Value)
		if isWrite(ev.F) && ev.Type == "ok" && result != "null" {
			// What a write wrote, as faultline reads it: the value of an ok
			// completion when it has one, else the invocation's (an info
			// completion often carries no value, or null).
			o.ev.Value = ev.Value
		}
		add(o, line, result, ev.Type)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, o := range inFlight {
		add(o, math.MaxInt64, "null", "pending")
	}
	return ops, nil
}

func main() {
	initial := flag.String("initial", "null", "initial value of every register (JSON)")
	timeout := flag.Duration("timeout", 60*time.Second, "give up on a file after this long")
	flag.Parse()
	start := kvState{set: *initial != "null", text: compact(json.RawMessage(*initial))}
	model := porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var order []string
			for _, op := range h {
				k := op.Input.(input).key
				if _, seen := byKey[k]; !seen {
					order = append(order, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			var parts [][]porcupine.Operation
			for _, k := range order {
				parts = append(parts, byKey[k])
			}
			return parts
		},
		Init:  func() interface{} { return start },
		Step:  step,
		Equal: porcupine.ShallowEqual,
	}
	for _, path := range flag.Args() {
		ops, err := history(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// With no operation left (every one failed, or is a read whose
		// outcome is unknown) there is nothing to check: the history is
		// linearizable. Porcupine v0.1.x would not say so: with no partition
		// its checkParallel waits for a result that never comes, until the
		// timeout ("unknown"), or forever without one; later releases return
		// Ok for an empty history, which is what this says.
		if len(ops) == 0 {
			fmt.Println("ok")
			continue
		}
		switch porcupine.CheckOperationsTimeout(model, ops, *timeout) {
		case porcupine.Ok:
			fmt.Println("ok")
		case porcupine.Illegal:
			fmt.Println("illegal")
		default:
			fmt.Println("unknown")
		}
	}
}
