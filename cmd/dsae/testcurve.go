package main

import (
	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/worker"
)

// The test curve of `dsae train`: the test split's loss at some history
// points, so that loss.png shows train and test together.
const (
	testCurvePoints = 25    // evaluations during the run, at most (and the last step)
	testCurveRows   = 10000 // rows of the test split each evaluates, at most (MNIST's test set is whole)
)

// testCurve evaluates the test split at evenly spaced history points of a
// run. Its observe runs from LocalRun's Progress callback, between steps,
// on the training goroutine, so the model does not change under it.
type testCurve struct {
	m             *sae.Model
	x             []float32
	rows          int
	every, stride int64 // history interval; evaluate every stride-th point
	steps         int64
	points        map[int64]testPoint
}

// newTestCurve returns the test curve of a run of steps steps with a
// history point every `every` steps, or nil without a test split.
func newTestCurve(test *datafile.Matrix, m *sae.Model, steps, every int64) *testCurve {
	if test == nil || test.Rows == 0 {
		return nil
	}
	rows := min(test.Rows, testCurveRows)
	n := max(1, steps/every) // history points
	return &testCurve{m: m, x: test.X[:rows*test.D], rows: rows, every: every,
		stride: (n + testCurvePoints - 1) / testCurvePoints, steps: steps, points: map[int64]testPoint{}}
}

// observe evaluates the test split if step is one of the curve's points.
func (c *testCurve) observe(step int64) {
	if c == nil || (step != c.steps && (step%c.every != 0 || (step/c.every)%c.stride != 0)) {
		return
	}
	met := c.m.Evaluate(c.x, c.rows, 4096)
	c.points[step] = testPoint{Rows: c.rows, Loss: met.Loss, MSE: met.MSE}
}

// pointsSoFar copies the points evaluated so far, for a checkpoint.
func (c *testCurve) pointsSoFar() map[int64]testPoint {
	if c == nil {
		return nil
	}
	out := make(map[int64]testPoint, len(c.points))
	for k, v := range c.points {
		out[k] = v
	}
	return out
}

// restore puts back the points of a checkpoint (--resume).
func (c *testCurve) restore(points map[int64]testPoint) {
	if c == nil {
		return
	}
	for k, v := range points {
		c.points[k] = v
	}
}

// history returns the run's history with the test points attached to the
// history points of the same step.
func (c *testCurve) history(h []worker.HistoryPoint) []historyPoint {
	out := make([]historyPoint, len(h))
	for i, p := range h {
		out[i].HistoryPoint = p
		if c != nil {
			if t, ok := c.points[p.Step]; ok {
				out[i].Test = &t
			}
		}
	}
	return out
}
