// Package artifact keeps what a training job leaves in S3-compatible
// object storage, under jobs/<id>/: its checkpoints and its finished model.
//
// A [CheckpointStore] saves a [Checkpoint] (parameters, optimizer and
// tracker state, step, epoch, seed, metrics) under a unique key and
// publishes it by writing its commit marker last, so a half-written
// checkpoint is never listed or loaded; loads verify its SHA-256, and Prune
// keeps the last K. [UploadModel] copies a model directory (sae.safetensors,
// cfg.json, metrics.json, pictures) under jobs/<id>/model/ with a manifest
// written last; [PullModel] downloads and verifies it into a local directory
// atomically.
//
// Both work through a *storage.Client. A missing checkpoint or model is
// storage.ErrNotFound; one that fails its checks wraps [ErrCorrupt].
package artifact
