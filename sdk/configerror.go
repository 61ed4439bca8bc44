package sdk

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// ConfigError is how a plugin says which key of its config block is wrong.
// Return one (or several, with errors.Join) from [Tracer.Describe], and the
// host reports it at that key's line and column in its config file, as
// `deploy.yaml:14:9: plugins[0].config.hz: want 1..100000`. Field is the
// key's path inside the block, dotted with [n] for list items ("hz",
// "programs[2].filter"); "" means the block as a whole.
//
// It matches (errors.Is) [ErrInvalid], on both sides of the connection.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "config: " + e.Msg
	}
	return fmt.Sprintf("config: %s: %s", e.Field, e.Msg)
}

// Is makes a ConfigError match [ErrInvalid].
func (e *ConfigError) Is(target error) bool { return target == ErrInvalid }

// configErrors collects the ConfigErrors in err's tree, in order.
func configErrors(err error) []*ConfigError {
	var out []*ConfigError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *ConfigError:
			out = append(out, e)
			return
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// withFieldViolations adds a google.rpc.BadRequest detail listing ces to st.
func withFieldViolations(st *status.Status, ces []*ConfigError) *status.Status {
	br := &errdetails.BadRequest{}
	for _, c := range ces {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: c.Field, Description: c.Msg})
	}
	if d, err := st.WithDetails(br); err == nil {
		return d
	}
	return st
}

// ConfigErrors returns the [ConfigError]s err carries: a plugin's, from a
// status that crossed gRPC (its google.rpc.BadRequest detail), or from err's
// own tree. The host maps each to a position in its config file.
func ConfigErrors(err error) []*ConfigError {
	if ces := configErrors(err); len(ces) > 0 {
		return ces
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return nil
	}
	var out []*ConfigError
	for _, d := range se.GRPCStatus().Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, &ConfigError{Field: v.GetField(), Msg: v.GetDescription()})
			}
		}
	}
	return out
}
