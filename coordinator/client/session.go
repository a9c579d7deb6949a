package client

import (
	"crypto/rand"
	"encoding/hex"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// NewRequestID returns a random id for one logical write to the control
// plane (a job submission, a worker's report). Every retry of that write
// carries the same id, so that the coordinators apply it once and answer
// the retries from their state.
func NewRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// Refused reports whether err is the control plane refusing the request
// itself, so that sending it again cannot succeed: a report naming a stale
// generation or a worker that is not a member (FailedPrecondition), a bad
// argument, an unknown job, or missing credentials. Unavailable (no
// coordinator or no leader reachable), deadlines and other errors are worth
// a retry.
func Refused(err error) bool {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated:
		return true
	}
	return false
}

// Terminal reports whether s is a final job state (completed, failed,
// canceled): the job changes no more.
func Terminal(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_COMPLETED || s == pb.JobState_JOB_STATE_FAILED || s == pb.JobState_JOB_STATE_CANCELED
}
