package sieve

import "context"

func compile(src []byte, opts Options) (*Script, error) {
	l := opts.Limits.withDefaults()
	body, err := parse(src, l)
	if err != nil {
		return nil, err
	}
	return &Script{limits: l, body: body}, nil
}

func (s *Script) run(ctx context.Context, env Env, msg *Message) (*Result, error) {
	return &Result{ImplicitKeep: true}, nil
}
