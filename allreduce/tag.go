package allreduce

import "fmt"

// Tag identifies one all-reduce call. Job and Generation must equal the
// ring's; (Step, Phase) must grow strictly from one call on a ring to the
// next (Step first, then Phase), so that a piece left over from an earlier
// call can be told from one of the current call.
type Tag struct {
	Job        string
	Generation uint64
	Step       uint64
	Phase      uint32
}

func (t Tag) String() string {
	return fmt.Sprintf("job %q generation %d step %d phase %d", t.Job, t.Generation, t.Step, t.Phase)
}

// cmpStepPhase orders two calls of one ring: -1, 0 or +1.
func cmpStepPhase(step uint64, phase uint32, t Tag) int {
	switch {
	case step < t.Step:
		return -1
	case step > t.Step:
		return 1
	case phase < t.Phase:
		return -1
	case phase > t.Phase:
		return 1
	}
	return 0
}
