//go:build js && wasm

package main

import (
	"encoding/json"
	"syscall/js"

	"github.com/deepcast/deepcast/player"
)

func main() {
	sessions := map[int]*player.BrowserSession{}
	next := 0
	fail := func(err error) any { return map[string]any{"error": err.Error()} }
	api := js.Global().Get("Object").New()
	names := []any{}
	for _, n := range player.Algorithms() {
		names = append(names, n)
	}
	api.Set("algorithms", js.ValueOf(names))
	api.Set("newSession", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeString {
			return map[string]any{"error": "newSession(name, videoJSON)"}
		}
		var v player.BrowserVideo
		if err := json.Unmarshal([]byte(args[1].String()), &v); err != nil {
			return fail(err)
		}
		s, err := player.NewBrowserSession(args[0].String(), v)
		if err != nil {
			return fail(err)
		}
		next++
		sessions[next] = s
		return map[string]any{"id": next}
	}))
	api.Set("choose", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 || args[0].Type() != js.TypeNumber || args[1].Type() != js.TypeString {
			return map[string]any{"error": "choose(id, stateJSON)"}
		}
		s, ok := sessions[args[0].Int()]
		if !ok {
			return map[string]any{"error": "no such session"}
		}
		var st player.BrowserState
		if err := json.Unmarshal([]byte(args[1].String()), &st); err != nil {
			return fail(err)
		}
		q, err := s.Choose(st)
		if err != nil {
			return fail(err)
		}
		return map[string]any{"quality": q}
	}))
	api.Set("abandon", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 || args[0].Type() != js.TypeNumber || args[1].Type() != js.TypeString {
			return map[string]any{"error": "abandon(id, progressJSON)"}
		}
		s, ok := sessions[args[0].Int()]
		if !ok {
			return map[string]any{"error": "no such session"}
		}
		var p player.BrowserProgress
		if err := json.Unmarshal([]byte(args[1].String()), &p); err != nil {
			return fail(err)
		}
		q, err := s.Abandon(p)
		if err != nil {
			return fail(err)
		}
		return map[string]any{"quality": q}
	}))
	api.Set("closeSession", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) == 1 && args[0].Type() == js.TypeNumber {
			delete(sessions, args[0].Int())
		}
		return nil
	}))
	js.Global().Set("deepcastABR", api)
	if ready := js.Global().Get("onDeepcastABR"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {} // the functions above stay callable
}
