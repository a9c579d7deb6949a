package jobspec_test

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/dsae/dsae/worker/jobspec"
)

// A spec from a YAML file, overridden by flags, refused with sae's message,
// told in the words of the command line and of the API.
func Example() {
	s := jobspec.Default()
	if err := jobspec.ParseYAML(strings.NewReader("data: acts\nhidden: 64\nweight_decay: 0\nrho: 0.05\n"), &s); err != nil {
		fmt.Println(err)
		return
	}
	cli := jobspec.Default()
	fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
	jobspec.AddFlags(fs, &cli)
	_ = fs.Parse([]string{"--rho", "1.5"})
	if err := jobspec.Override(&s, fs); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Model.H, s.StepsFor(60000))
	err := s.Validate()
	fmt.Println(err)
	fmt.Println(jobspec.Explain(err, jobspec.Flags))
	fmt.Println(jobspec.Explain(err, jobspec.Fields))
	// Output:
	// 64 4700
	// sae: rho = 1.5 out of range (0, 1)
	// --rho = 1.5 out of range (0, 1)
	// model.rho = 1.5 out of range (0, 1)
}
