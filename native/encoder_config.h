// The config.json fields that change the encoder's math, for every encoder family. The families share
// one architecture (post-LayerNorm transformer); what differs is data: the checkpoint key prefix and
// names, how position ids are formed, whether token types exist, and fixed sinusoidal positions.
#pragma once
#include <cstdint>
#include <string>

namespace ner {

// XLM-RoBERTa is RoBERTa's architecture under the same "roberta." keys, so it is Roberta here.
enum class EncoderFamily { Bert, DistilBert, Roberta };
EncoderFamily parseEncoderFamily(const std::string& name);

struct EncoderConfig {
  EncoderFamily family = EncoderFamily::Bert;
  int64_t vocabSize = 30522;           // vocab_size
  int64_t hiddenSize = 768;            // hidden_size (DistilBERT: dim)
  int64_t numHiddenLayers = 12;        // num_hidden_layers (n_layers)
  int64_t numAttentionHeads = 12;      // num_attention_heads (n_heads)
  int64_t intermediateSize = 3072;     // intermediate_size (hidden_dim)
  int64_t maxPositionEmbeddings = 512; // max_position_embeddings
  int64_t typeVocabSize = 2;           // type_vocab_size; 0 = no token type embeddings (DistilBERT)
  int64_t padTokenId = 0;              // pad_token_id: nn.Embedding padding_idx (no gradient); -1 = none
  bool sinusoidalPositions = false;    // DistilBERT sinusoidal_pos_embds: fixed, not trained
  double layerNormEps = 1e-12;         // layer_norm_eps (DistilBERT: always 1e-12)
  double hiddenDropoutProb = 0.1;      // hidden_dropout_prob (dropout)
  double attentionProbsDropoutProb = 0.1;  // attention_probs_dropout_prob (attention_dropout)
  std::string hiddenAct = "gelu";      // hidden_act (activation)

  // Checkpoint key prefix of the encoder ("bert", "distilbert", "roberta").
  std::string prefix() const;
  // RoBERTa numbers positions from padding_idx + 1, counting only non-pad tokens.
  bool positionsAfterPadding() const { return family == EncoderFamily::Roberta; }
  // The longest input the position table allows (RoBERTa loses padding_idx + 1 rows).
  int64_t maxSequenceLength() const {
    return positionsAfterPadding() ? maxPositionEmbeddings - padTokenId - 1 : maxPositionEmbeddings;
  }
};

}  // namespace ner
