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
	api.Set("choose", sessionCall(sessions, "choose(id, stateJSON)", (*player.BrowserSession).Choose))
	api.Set("abandon", sessionCall(sessions, "abandon(id, progressJSON)", (*player.BrowserSession).Abandon))
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

// sessionCall is a function of the API that asks a session a question:
// (id, JSON of T) → {quality} or {error}; usage is its signature, for the
// error when it is called wrongly.
func sessionCall[T any](sessions map[int]*player.BrowserSession, usage string, ask func(*player.BrowserSession, T) (int, error)) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 || args[0].Type() != js.TypeNumber || args[1].Type() != js.TypeString {
			return map[string]any{"error": usage}
		}
		s, ok := sessions[args[0].Int()]
		if !ok {
			return map[string]any{"error": "no such session"}
		}
		var in T
		if err := json.Unmarshal([]byte(args[1].String()), &in); err != nil {
			return map[string]any{"error": err.Error()}
		}
		q, err := ask(s, in)
		if err != nil {
			return map[string]any{"error": err.Error()}
		}
		return map[string]any{"quality": q}
	})
}
