package storetest

import "testing"

// TestObjectStoreContractMemStore holds the in-memory test store to the
// same contract as the real client.
func TestObjectStoreContractMemStore(t *testing.T) {
	ObjectStoreContract(t, NewMemStore(), "")
}
