// The config.json fields that change the encoder's math (HF BertConfig names in comments).
#pragma once
#include <cstdint>
#include <string>

namespace ner {

struct BertConfig {
  int64_t vocabSize = 30522;           // vocab_size
  int64_t hiddenSize = 768;            // hidden_size
  int64_t numHiddenLayers = 12;        // num_hidden_layers
  int64_t numAttentionHeads = 12;      // num_attention_heads
  int64_t intermediateSize = 3072;     // intermediate_size
  int64_t maxPositionEmbeddings = 512; // max_position_embeddings
  int64_t typeVocabSize = 2;           // type_vocab_size
  double layerNormEps = 1e-12;         // layer_norm_eps
  double hiddenDropoutProb = 0.1;      // hidden_dropout_prob
  double attentionProbsDropoutProb = 0.1;  // attention_probs_dropout_prob
  std::string hiddenAct = "gelu";      // hidden_act
};

}  // namespace ner
