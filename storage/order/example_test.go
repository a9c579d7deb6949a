package order_test

import (
	"fmt"
	"slices"

	"github.com/dsae/dsae/storage/order"
)

// The order of an epoch: chunks permuted, rows shuffled inside each chunk,
// every row exactly once.
func ExampleEpochOrder() {
	layout := order.Layout{ShardRows: []int64{10, 6}, ChunkRows: 4}
	o := order.NewEpochOrder(layout, 42, 0)
	rows := o.Rows(0, o.Len(), nil)
	fmt.Println(o.Len(), o.NumChunks(), slices.Equal(slices.Sorted(slices.Values(rows)), []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}))
	// Rank 1 of 2 reads positions [4, 8) of global batch 0 when B = 8.
	fmt.Println(order.BatchSlice(o.Len(), 8, 0, 1, 2))
	// Output:
	// 16 5 true
	// 4 8
}
