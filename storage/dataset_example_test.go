package storage_test

import (
	"fmt"
	"slices"

	"github.com/dsae/dsae/storage"
)

// Load the MNIST test split into memory.
func ExampleOpen() {
	ds, err := storage.Open("mnist:test")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ds.Rows, ds.D, ds.Labels[0])
	// Output: 10000 784 7
}

// The order of an epoch: chunks permuted, rows shuffled inside each chunk,
// every row exactly once.
func ExampleEpochOrder() {
	layout := storage.Layout{ShardRows: []int64{10, 6}, ChunkRows: 4}
	order := storage.NewEpochOrder(layout, 42, 0)
	rows := order.Rows(0, order.Len(), nil)
	fmt.Println(order.Len(), order.NumChunks(), slices.Equal(slices.Sorted(slices.Values(rows)), []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}))
	// Rank 1 of 2 reads positions [4, 8) of global batch 0 when B = 8.
	fmt.Println(storage.BatchSlice(order.Len(), 8, 0, 1, 2))
	// Output:
	// 16 5 true
	// 4 8
}
