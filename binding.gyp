# ner-engine builds with CMake (CMakeLists.txt, driven by cmake-js through `npm install`).
# This file exists only so that tools which look for binding.gyp (node-gyp, prebuild tooling) do not
# start a second, divergent build: its one target runs the CMake build and produces nothing else.
{
  "targets": [
    {
      "target_name": "ner_engine_cmake",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/ner_engine.node"],
          "action": ["node", "scripts/build-native.mjs"]
        }
      ]
    }
  ]
}
