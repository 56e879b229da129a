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
//   DIR/config.json, DIR/model.safetensors, DIR/tokenizer*.json (a fine-tuning run: adapter_*)
//                                             hard links to the newest checkpoint's files, so DIR
//                                             itself loads as a model folder (generate, convert)
//
// Atomicity: a checkpoint is written into DIR/.tmp-checkpoint-*, every file fsynced, then the
// folder is renamed into place (a re-save of the same step swaps the folders atomically with
// RENAME_EXCHANGE where the file system has it) and DIR/latest is replaced atomically
// (AtomicFile): `latest` is the commit point. The top-level links are prepared under temporary
// names before `latest` is replaced and renamed over the old ones right after it, so the window in
// which `latest` and DIR/model.safetensors disagree is a few renames long; the next run's start
// (SaveFolder, then sync_top_level) closes even that. A process killed at any moment leaves `latest`
// naming a complete, checksummed checkpoint (or no checkpoint yet). Leftovers of an interrupted
// save (only names of the forms above, plus `latest.tmp-*` and the like) are removed when the next
// run opens the folder. Older checkpoints beyond `keep` are deleted only after the new one is in
// place, renamed away first so that a half-deleted checkpoint never keeps its name.
//
// Thread safety: single-threaded (rank 0 of a distributed run).
#pragma once

#include <cstdint>
#include <functional>
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
// The same with the checkpoint's model files written by `write_model` into the folder it is given
// (a fine-tuning run stores its adapter: adapter_config.json + adapter_model.safetensors, which
// are linked at the top level like a model's files). n_params goes into trainer_state.json.
using ModelWriter = std::function<void(const std::string& folder)>;
std::string save_checkpoint(const std::string& dir, const ModelWriter& write_model, int64_t n_params, AdamW& opt,
                            const TrainerState& state, const std::vector<std::string>& extra_files, int keep);
// The model as a Hugging Face folder: config.json and model.safetensors (every tensor f32, HF names).
void write_hf_model(const std::string& folder, const TrainModel& model);

// The checkpoint folder a --resume path names: DIR (through DIR/latest) or a checkpoint folder
// itself. Checks that every file is present and matches its CRC-32; throws Error with the file
// and what is wrong (missing, truncated, corrupt) otherwise. Returns the folder.
std::string verify_checkpoint(const std::string& path);
TrainerState read_trainer_state(const std::string& ckpt_dir);
// Loads m / v from the checkpoint into opt (same parameter names and sizes, else Error) and sets
// its step count.
void load_optimizer_state(const std::string& ckpt_dir, AdamW& opt, int64_t step);
// true when DIR already holds a checkpoint: `latest`, or a checkpoint-NNNNNN folder with its
// trainer_state.json (a fresh run refuses to write over it).
bool has_checkpoint(const std::string& dir);
// For a --save folder without `latest` (a kill between the first checkpoint's rename into place
// and the first `latest`): the newest checkpoint-NNNNNN folder in dir that passes
// verify_checkpoint, or "" when there is none.
std::string newest_complete_checkpoint(const std::string& dir);
// Points DIR/latest at the checkpoint folder `name` (atomically).
void write_latest(const std::string& dir, const std::string& name);

// The --save folder of a run, opened by rank 0 before its first step and held to the end:
// creates DIR (and its parents) when missing, takes an exclusive flock() on it (a second run
// writing into DIR fails at once), checks that files can be created there (check_folder_writable)
// and removes the leftovers of an interrupted save (remove_save_leftovers). Throws Error (one
// line) when DIR cannot be created, is locked or is not writable; `flag` (--save, --resume) names
// the option that chose DIR in those messages.
class SaveFolder {
public:
    explicit SaveFolder(const std::string& dir, const std::string& flag = "--save");
    ~SaveFolder();
    SaveFolder(const SaveFolder&) = delete;
    SaveFolder& operator=(const SaveFolder&) = delete;
    const std::string& dir() const { return dir_; }
    // Leftovers removed (or restored) when the folder was opened.
    int leftovers() const { return leftovers_; }

private:
    std::string dir_;
    int fd_ = -1;
    int leftovers_ = 0;
};

// Throws Error (one line: what, where, found, hint) unless a file can be created in the existing
// folder dir: creates and removes a probe file (`.llmforge-probe-<pid>`), so what counts is what
// this process can really do (read-only mounts, permissions, ACLs; root ignores permissions).
// `flag` names the option in the message.
void check_folder_writable(const std::string& dir, const std::string& flag);

// Removes what an interrupted save left in DIR, and only names this code creates:
// .tmp-checkpoint-NNNNNN-PID/ and .tmp-del-checkpoint-NNNNNN-PID/ folders, `<f>.tmp-XXXXXX`
// (AtomicFile) and `.link-<f>` files for f in latest, loss.svg and the top-level model files, and
// probe files. A .tmp-old-checkpoint-NNNNNN/ folder (a checkpoint moved aside during a re-save of
// its step) is renamed back when checkpoint-NNNNNN is missing, else removed. Returns how many
// entries it removed or restored. Not safe while another process saves into DIR (SaveFolder
// holds the lock that prevents that).
int remove_save_leftovers(const std::string& dir);

// true when dir is a folder with no checkpoint yet: no `latest`, no trainer_state.json, and
// nothing in it but leftovers of the kinds remove_save_leftovers() removes (an empty folder
// counts): a run stopped before its first save completed.
bool no_checkpoint_yet(const std::string& dir);

// Makes DIR/{model.safetensors,config.json,tokenizer*.json} the files of the checkpoint DIR/latest
// names: each one that is missing or differs (not the same inode and not the same bytes) is
// replaced by a hard link (a copy where the file system has no hard links) through link + rename.
// No-op without DIR/latest or when it names no complete checkpoint. Returns the file names
// re-linked.
std::vector<std::string> sync_top_level(const std::string& dir);

// Writes the loss curve (train loss per step, validation loss points) as an SVG picture.
void write_loss_svg(const std::string& path, const TrainerState& state, const std::string& title);

// CRC-32 (zlib) of a file's bytes.
uint32_t file_crc32(const std::string& path);

}  // namespace llmforge::train
