package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dsae/dsae/storage"
)

// dirLister is an optional ObjectStore capability: listing the common
// prefixes directly under a prefix, so that listing datasets does not list
// every shard.
type dirLister interface {
	ListDirs(ctx context.Context, prefix string) ([]string, error)
}

// LoadManifest reads and validates the manifest of dataset name. A dataset
// that is not published is an error wrapping ErrDatasetNotFound.
func LoadManifest(ctx context.Context, store storage.ObjectStore, name string) (*Manifest, error) {
	if err := ValidateDatasetName(name); err != nil {
		return nil, err
	}
	key := manifestKey(name)
	rc, err := store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s (no %s)", ErrDatasetNotFound, name, key)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes+1))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s (no %s)", ErrDatasetNotFound, name, key)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: read %s: %w", name, key, err)
	}
	m, err := ParseManifest(key, data)
	if err != nil {
		return nil, err
	}
	if m.Name != name {
		return nil, fmt.Errorf("%w: manifest %s names dataset %q", ErrCorrupt, key, m.Name)
	}
	return m, nil
}

// ListDatasets returns the names of the published datasets (those with a
// manifest), sorted.
func ListDatasets(ctx context.Context, store storage.ObjectStore) ([]string, error) {
	var names []string
	if dl, ok := store.(dirLister); ok {
		dirs, err := dl.ListDirs(ctx, DatasetPrefix)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			name := strings.TrimSuffix(strings.TrimPrefix(d, DatasetPrefix), "/")
			if ValidateDatasetName(name) != nil {
				continue
			}
			if _, err := store.Stat(ctx, manifestKey(name)); err == nil {
				names = append(names, name)
			} else if !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
		}
		return names, nil
	}
	objs, err := store.List(ctx, DatasetPrefix)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Key, DatasetPrefix)
		if name, ok2 := strings.CutSuffix(rest, "/manifest.json"); ok && ok2 && ValidateDatasetName(name) == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// DeleteDataset unpublishes dataset name (its manifest goes first, so
// readers never see a partial dataset) and then deletes its objects. It
// returns ErrDatasetNotFound if nothing is stored under the name.
func DeleteDataset(ctx context.Context, store storage.ObjectStore, name string) error {
	if err := ValidateDatasetName(name); err != nil {
		return err
	}
	objs, err := store.List(ctx, datasetDir(name))
	if err != nil {
		return err
	}
	if len(objs) == 0 {
		return fmt.Errorf("%w: %s", ErrDatasetNotFound, name)
	}
	if err := store.Delete(ctx, manifestKey(name)); err != nil {
		return fmt.Errorf("dataset %s: unpublish: %w", name, err)
	}
	return deleteKeys(ctx, store, objs)
}

func deleteKeys(ctx context.Context, store storage.ObjectStore, objs []storage.ObjectInfo) error {
	for _, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return err
		}
	}
	return nil
}
