{
  "targets": [
    {
      "target_name": "sdebnn",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_compile",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/sdebnn.node"],
          "action": ["node", "scripts/cmake-js-compile.js"]
        }
      ]
    }
  ]
}
