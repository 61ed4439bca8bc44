package sdk

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors. [Host.Request] returns them (wrapped) with the kernel's negative
// return value; they cross the gRPC boundary through [StatusFromError] and
// [ErrorFromStatus], so errors.Is works on either side. Each has a gRPC code
// and a default errno ([Errno]); several share a code and are told apart by
// a google.rpc.ErrorInfo detail (domain [ErrorDomain]) that names them.
var (
	// ErrInvalid: the request or description is invalid (-EINVAL,
	// codes.InvalidArgument).
	ErrInvalid = errors.New("sdk: invalid argument")
	// ErrUnknownTask: the host knows no task with that tid (-EINVAL,
	// codes.NotFound).
	ErrUnknownTask = errors.New("sdk: unknown task")
	// ErrNoEntry: the task is not inside a kernel entry, so there is no
	// stack to request (-EINVAL, codes.FailedPrecondition).
	ErrNoEntry = errors.New("sdk: task has no open kernel entry")
	// ErrExiting: the task is exiting or has exited (-EINVAL,
	// codes.FailedPrecondition).
	ErrExiting = errors.New("sdk: task is exiting")
	// ErrUnsupportedTask: kernel threads and 32-bit (compat) tasks have no
	// deferred user stack (-EINVAL, codes.FailedPrecondition).
	ErrUnsupportedTask = errors.New("sdk: task has no deferred user stack (kernel thread or 32-bit)")
	// ErrBusy: the host cannot take the request now (-EBUSY,
	// codes.ResourceExhausted).
	ErrBusy = errors.New("sdk: busy")
	// ErrCancelled: the plugin's registration was cancelled, so it can
	// request no more stacks (-EINVAL, codes.Aborted).
	ErrCancelled = errors.New("sdk: plugin registration is cancelled")
	// ErrNoHost: the host serves no Host service to this plugin (it passed
	// broker id 0), or the plugin has not been described yet (-ENOTCONN,
	// codes.Unavailable).
	ErrNoHost = errors.New("sdk: no connection to the host")
	// ErrProtocol: a message broke the protocol (an unknown interned id, a
	// frame type out of range…) (-EPROTO, codes.InvalidArgument).
	ErrProtocol = errors.New("sdk: protocol error")
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo detail that
// [StatusFromError] attaches to name a sentinel; its metadata key "errno"
// holds the positive errno.
const ErrorDomain = "sdk.unwindd.dev"

// sentinel is one row of the mapping table.
type sentinel struct {
	err    error
	code   codes.Code
	reason string
	errno  syscall.Errno
}

// sentinels maps each error to its code, ErrorInfo reason and errno. A table,
// not mutable state.
var sentinels = [...]sentinel{
	{ErrInvalid, codes.InvalidArgument, "INVALID", syscall.EINVAL},
	{ErrUnknownTask, codes.NotFound, "UNKNOWN_TASK", syscall.EINVAL},
	{ErrNoEntry, codes.FailedPrecondition, "NO_ENTRY", syscall.EINVAL},
	{ErrExiting, codes.FailedPrecondition, "EXITING", syscall.EINVAL},
	{ErrUnsupportedTask, codes.FailedPrecondition, "UNSUPPORTED_TASK", syscall.EINVAL},
	{ErrBusy, codes.ResourceExhausted, "BUSY", syscall.EBUSY},
	{ErrCancelled, codes.Aborted, "CANCELLED", syscall.EINVAL},
	{ErrNoHost, codes.Unavailable, "NO_HOST", syscall.ENOTCONN},
	{ErrProtocol, codes.InvalidArgument, "PROTOCOL", syscall.EPROTO},
}

// byCode is the sentinel a status without an ErrorInfo detail maps back to.
var byCode = map[codes.Code]error{
	codes.InvalidArgument:    ErrInvalid,
	codes.NotFound:           ErrUnknownTask,
	codes.FailedPrecondition: ErrNoEntry,
	codes.ResourceExhausted:  ErrBusy,
	codes.Aborted:            ErrCancelled,
	codes.Unavailable:        ErrNoHost,
}

func lookup(err error) (sentinel, bool) {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return s, true
		}
	}
	return sentinel{}, false
}

// StatusFromError turns err into an error carrying a gRPC status, for a
// server to return: an error matching one of this package's sentinels gets
// its code and an ErrorInfo naming it (and the errno err wraps, if any);
// context.Canceled and context.DeadlineExceeded get their codes; an error
// that already carries a status keeps it; anything else is codes.Unknown.
// The message is err.Error(). nil stays nil.
func StatusFromError(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := lookup(err); ok {
		errno := s.errno
		var en syscall.Errno
		if errors.As(err, &en) && en != 0 {
			errno = en
		}
		st := status.New(s.code, err.Error())
		if ces := configErrors(err); len(ces) > 0 {
			st = withFieldViolations(st, ces)
		}
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{
			Reason:   s.reason,
			Domain:   ErrorDomain,
			Metadata: map[string]string{"errno": strconv.Itoa(int(errno))},
		}); derr == nil {
			st = d
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// ErrorFromStatus is the inverse of [StatusFromError], for a client: it
// returns an error with the status's message that matches (errors.Is) the
// sentinel the status names, or the one its code maps to (InvalidArgument:
// [ErrInvalid], NotFound: [ErrUnknownTask], FailedPrecondition: [ErrNoEntry],
// ResourceExhausted: [ErrBusy], Aborted: [ErrCancelled], Unavailable (the
// peer is gone): [ErrNoHost]; Canceled and DeadlineExceeded: the context
// errors), and the errno the status carries (errors.As to a syscall.Errno).
// The result still carries the status. An error without a status, or with an
// unmapped code (Unknown, Internal…), is returned as is. nil stays nil.
func ErrorFromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() == codes.OK {
		return nil
	}
	e := &statusError{st: st}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != ErrorDomain {
			continue
		}
		for _, s := range sentinels {
			if s.reason == info.GetReason() {
				e.errs = append(e.errs, s.err)
				break
			}
		}
		if n, err := strconv.Atoi(info.GetMetadata()["errno"]); err == nil && n > 0 {
			e.errs = append(e.errs, syscall.Errno(n))
		}
	}
	if len(e.errs) == 0 {
		switch st.Code() {
		case codes.Canceled:
			e.errs = append(e.errs, context.Canceled)
		case codes.DeadlineExceeded:
			e.errs = append(e.errs, context.DeadlineExceeded)
		default:
			s, ok := byCode[st.Code()]
			if !ok {
				return err
			}
			e.errs = append(e.errs, s)
		}
	}
	return e
}

// statusError is an error that came across gRPC: the peer's message, the
// sentinel (and errno) it named, and the status itself.
type statusError struct {
	st   *status.Status
	errs []error
}

func (e *statusError) Error() string              { return e.st.Message() }
func (e *statusError) Unwrap() []error            { return e.errs }
func (e *statusError) GRPCStatus() *status.Status { return e.st }

// Errno maps err to the kernel's return value: 0 for nil, the negative of a
// syscall.Errno err wraps, the default errno of the sentinel it matches
// (-EINVAL for most, -EBUSY for [ErrBusy]), -EINVAL otherwise.
func Errno(err error) int {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) && en != 0 {
		return -int(en)
	}
	if s, ok := lookup(err); ok {
		return -int(s.errno)
	}
	return -int(syscall.EINVAL)
}

// errorFromErrno is the error for a negative kernel return value that came
// in a HostRequestResult rather than as a status: the sentinel whose text
// the peer's message contains (a host that wrapped one), else the one the
// errno stands for (-EBUSY: [ErrBusy]; others: [ErrInvalid]), with the
// errno and the peer's message.
func errorFromErrno(ret int, msg string) error {
	en := syscall.Errno(-ret)
	base := ErrInvalid
	if en == syscall.EBUSY {
		base = ErrBusy
	}
	for _, s := range sentinels {
		if msg != "" && strings.Contains(msg, s.err.Error()) {
			base = s.err
			break
		}
	}
	if msg == "" {
		msg = en.Error()
	}
	return &errnoError{msg: msg, errs: []error{base, en}}
}

type errnoError struct {
	msg  string
	errs []error
}

func (e *errnoError) Error() string   { return e.msg }
func (e *errnoError) Unwrap() []error { return e.errs }
