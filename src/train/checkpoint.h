// Crash-safe training checkpoints.
//
// Layout of a --save folder DIR:
//   DIR/checkpoint-000100/   one complete checkpoint:
//       config.json, model.safetensors        the model as a Hugging Face folder (HF tensor names)
//       optimizer.safetensors                 AdamW m.<name> / v.<name> (GGUF names), f32
//       trainer_state.json                    step, hyper-parameters, loss scale, loss history,
//                                             and the CRC-32 of every other file in the folder
//       tokenizer.json, tokenizer_config.json when the training data named a tokenizer
//   DIR/latest                                "checkpoint-000100": the newest complete checkpoint
//   DIR/config.json, DIR/model.safetensors, DIR/tokenizer*.json
//                                             hard links to the newest checkpoint's files, so DIR
//                                             itself loads as a model folder (generate, convert)
//
// Atomicity: a checkpoint is written into DIR/.tmp-checkpoint-*, every file fsynced, then the
// folder is renamed into place and DIR/latest is replaced atomically (AtomicFile); the top-level
// links are replaced one by one with rename. A process killed at any moment leaves `latest`
// naming a complete, checksummed checkpoint (or no checkpoint yet); leftovers of an interrupted
// save are removed by the next save. Older checkpoints beyond `keep` are deleted only after the
// new one is in place.
//
// Thread safety: single-threaded (rank 0 of a distributed run).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/optimizer.h"
#include "train/train_model.h"

namespace llmforge::train {

struct TrainerState {
    int64_t step = 0;  // optimiser steps completed
    nlohmann::json args = nlohmann::json::object();     // the run's hyper-parameters (TrainArgs)
    double loss_scale = 1.0;                            // fp16 dynamic loss scale
    int64_t good_steps = 0;                             // fp16: finite steps since the last scale change
    nlohmann::json history = nlohmann::json::array();   // [[step, loss], ...] (train loss per step)
    nlohmann::json val_history = nlohmann::json::array();  // [[step, val_loss], ...]
};

// Writes checkpoint `state.step` into dir (see above). `extra_files`: paths copied into the
// checkpoint (tokenizer.json / tokenizer_config.json). Returns the checkpoint folder's path.
std::string save_checkpoint(const std::string& dir, const TrainModel& model, AdamW& opt, const TrainerState& state,
                            const std::vector<std::string>& extra_files, int keep);

// The checkpoint folder a --resume path names: DIR (through DIR/latest) or a checkpoint folder
// itself. Checks that every file is present and matches its CRC-32; throws Error with the file
// and what is wrong (missing, truncated, corrupt) otherwise. Returns the folder.
std::string verify_checkpoint(const std::string& path);
TrainerState read_trainer_state(const std::string& ckpt_dir);
// Loads m / v from the checkpoint into opt (same parameter names and sizes, else Error) and sets
// its step count.
void load_optimizer_state(const std::string& ckpt_dir, AdamW& opt, int64_t step);
// true when DIR already holds a checkpoint (a fresh run refuses to write over it).
bool has_checkpoint(const std::string& dir);

// Writes the loss curve (train loss per step, validation loss points) as an SVG picture.
void write_loss_svg(const std::string& path, const TrainerState& state, const std::string& title);

// CRC-32 (zlib) of a file's bytes.
uint32_t file_crc32(const std::string& path);

}  // namespace llmforge::train
