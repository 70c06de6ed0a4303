defmodule Qwen3.BadCheckpoints do
  @moduledoc false
  # A corpus of broken checkpoints, generated from the good tiny fixtures (nothing broken is
  # committed): each case copies a fixture, damages one thing, and names the error kind the
  # loader must answer with. Random bytes come from a fixed seed, so the corpus is stable.

  alias Qwen3.JSON

  @weights "model.safetensors"
  @embed "model.embed_tokens.weight"
  @norm "model.layers.0.input_layernorm.weight"

  @type case_spec :: {name :: String.t(), variant :: String.t(), kind :: atom, (Path.t() -> any)}

  @doc "Writes every case under `root`; returns `[{name, dir, expected_kind}]`."
  def build(root) do
    for {name, variant, kind, damage} <- cases() do
      dir = Path.join(root, name)
      File.rm_rf!(dir)
      File.mkdir_p!(root)
      File.cp_r!(Qwen3.Fixtures.path(variant), dir)
      damage.(dir)
      {name, dir, kind}
    end
  end

  @spec cases() :: [case_spec]
  def cases, do: file_cases() ++ header_cases() ++ config_cases() ++ quantized_cases() ++ sharded_cases()

  # Bytes of the weights file: cut short, replaced, or framed wrongly.
  defp file_cases do
    f32 = "dense-f32-tied"

    cuts =
      for {label, at} <- [empty: 0, four_bytes: 4, mid_header: 100, mid_data: 0.5, last_byte: -1] do
        {"truncated-#{label}", f32, :invalid_file, &edit_bytes(&1, fn bin -> cut(bin, at) end)}
      end

    cuts ++
      [
        {"garbage", f32, :invalid_file, &edit_bytes(&1, fn _ -> seeded_bytes(4096) end)},
        {"header-length-past-end", f32, :invalid_file,
         &edit_bytes(&1, fn <<_::64-little, rest::binary>> ->
           <<byte_size(rest) + 1::64-little, rest::binary>>
         end)},
        {"header-length-huge", f32, :invalid_file,
         &edit_bytes(&1, fn <<_::64-little, rest::binary>> ->
           <<0xFFFFFFFFFFFFFFFF::64-little, rest::binary>>
         end)},
        {"header-not-json", f32, :invalid_file,
         &edit_header_text(&1, fn h -> String.duplicate("x", byte_size(h)) end)},
        {"header-json-array", f32, :invalid_file, &edit_header_text(&1, fn _ -> "[1, 2, 3]" end)},
        {"weights-missing", f32, :io, &File.rm!(Path.join(&1, @weights))}
      ]
  end

  # Headers that parse but lie: offsets, sizes, dtypes and shapes that disagree with the data.
  defp header_cases do
    f32 = "dense-f32-tied"

    [
      {"offsets-past-end", f32, :invalid_file, &edit_entry(&1, @embed, fn e -> shift_end(e, 4096) end)},
      {"offsets-reversed", f32, :invalid_file,
       &edit_entry(&1, @embed, fn %{"data_offsets" => [a, b]} = e -> %{e | "data_offsets" => [b, a]} end)},
      {"offsets-short-of-shape", f32, :invalid_file, &edit_entry(&1, @embed, fn e -> shift_end(e, -4) end)},
      {"offsets-overlapping", f32, :invalid_file,
       &edit_entry(&1, @norm, fn e -> %{e | "data_offsets" => [0, 512]} end)},
      {"dtype-unknown", f32, :invalid_file, &edit_entry(&1, @embed, fn e -> %{e | "dtype" => "Q9"} end)},
      {"dtype-half-size", f32, :invalid_file, &edit_entry(&1, @embed, fn e -> %{e | "dtype" => "F16"} end)},
      {"dtype-integer", f32, :invalid_argument, &edit_entry(&1, @embed, fn e -> %{e | "dtype" => "I32"} end)},
      {"shape-transposed", f32, :invalid_argument,
       &edit_entry(&1, @embed, fn %{"shape" => [a, b]} = e -> %{e | "shape" => [b, a]} end)},
      {"shape-extra-axis", f32, :invalid_argument,
       &edit_entry(&1, @embed, fn e -> %{e | "shape" => e["shape"] ++ [1]} end)},
      {"shape-negative", f32, :invalid_file,
       &edit_entry(&1, @embed, fn %{"shape" => [a, b]} = e -> %{e | "shape" => [-a, -b]} end)},
      {"norm-wrong-length", f32, :invalid_argument,
       &edit_entry(&1, @norm, fn %{"shape" => [n]} = e -> %{e | "shape" => [div(n, 2), 2]} end)},
      {"tensor-missing", f32, :missing_tensor,
       &rename_entry(&1, @norm, "model.layers.0.unknown_norm.weight")},
      {"tensor-aliasing-another", f32, :invalid_file, &copy_entry(&1, @norm, "model.layers.0.extra.weight")},
      {"metadata-not-strings", f32, :invalid_file,
       &edit_header(&1, fn h -> Map.put(h, "__metadata__", %{"n" => 1}) end)}
    ]
  end

  @required ~w(hidden_size num_hidden_layers num_attention_heads num_key_value_heads vocab_size
               intermediate_size rope_theta rms_norm_eps)

  defp config_cases do
    f32 = "dense-f32-tied"

    missing =
      for key <- @required,
          do:
            {"config-without-#{key}", f32, :invalid_config, &edit_config(&1, fn c -> Map.delete(c, key) end)}

    missing ++
      [
        {"config-missing", f32, :io, &File.rm!(Path.join(&1, "config.json"))},
        {"config-empty", f32, :invalid_config, &File.write!(Path.join(&1, "config.json"), "")},
        {"config-truncated", f32, :invalid_config, &edit_file(&1, "config.json", fn t -> cut(t, 0.5) end)},
        {"config-not-utf8", f32, :invalid_config,
         &File.write!(Path.join(&1, "config.json"), <<"{", 0xFF, 0xFE, "}">>)},
        {"config-json-array", f32, :invalid_config, &File.write!(Path.join(&1, "config.json"), "[]")},
        {"config-string-number", f32, :invalid_config, &set_config(&1, "hidden_size", "128")},
        {"config-fractional", f32, :invalid_config, &set_config(&1, "hidden_size", 128.5)},
        {"config-negative-layers", f32, :invalid_config, &set_config(&1, "num_hidden_layers", -2)},
        {"config-zero-heads", f32, :invalid_config, &set_config(&1, "num_attention_heads", 0)},
        {"config-heads-not-grouped", f32, :invalid_config, &set_config(&1, "num_key_value_heads", 3)},
        {"config-nan-eps", f32, :invalid_config, &edit_file(&1, "config.json", fn t -> nan_eps(t) end)},
        {"config-vocab-mismatch", f32, :invalid_argument, &set_config(&1, "vocab_size", 1001)},
        {"config-other-model", f32, :invalid_config, &set_config(&1, "model_type", "llama")},
        {"config-rope-scaling", f32, :invalid_config,
         &set_config(&1, "rope_scaling", %{"rope_type" => "longrope", "factor" => 4.0})},
        {"config-yarn-without-original-length", f32, :invalid_config,
         &set_config(&1, "rope_scaling", %{"rope_type" => "yarn", "factor" => 4.0})},
        {"config-yarn-unknown-key", f32, :invalid_config,
         &set_config(&1, "rope_scaling", %{
           "rope_type" => "yarn",
           "factor" => 4.0,
           "original_max_position_embeddings" => 64,
           "low_freq_factor" => 1.0
         })},
        {"config-fp8-quantization", f32, :invalid_config,
         &set_config(&1, "quantization_config", %{"quant_method" => "fp8", "weight_block_size" => [128, 128]})},
        {"config-sliding-layer", f32, :invalid_config,
         &set_config(&1, "layer_types", ["full_attention", "sliding_attention"])},
        {"generation-config-broken", f32, :invalid_config,
         &File.write!(Path.join(&1, "generation_config.json"), "{\"eos_token_id\": ")}
      ]
  end

  defp quantized_cases do
    q4 = "q4-g64-tied"
    quant = fn dir, fun -> edit_config(dir, &Map.update!(&1, "quantization", fun)) end

    [
      {"quant-bits-7", q4, :invalid_config, &quant.(&1, fn q -> %{q | "bits" => 7} end)},
      {"quant-group-mismatch", q4, :invalid_argument, &quant.(&1, fn q -> %{q | "group_size" => 32} end)},
      {"quant-group-zero", q4, :invalid_config, &quant.(&1, fn q -> %{q | "group_size" => 0} end)},
      {"quant-mode-unknown", q4, :invalid_config, &quant.(&1, fn q -> Map.put(q, "mode", "mxfp4") end)},
      {"quant-not-object", q4, :invalid_config,
       &edit_config(&1, fn c -> %{c | "quantization" => "4bit"} end)},
      {"quant-override-garbage", q4, :invalid_config,
       &quant.(&1, fn q -> Map.put(q, "model.layers.0.mlp.down_proj", "eight") end)},
      {"quant-scales-missing", q4, :invalid_argument,
       &rename_entry(&1, "model.layers.0.mlp.down_proj.scales", "model.layers.0.mlp.down_proj.scale")},
      {"quant-dropped", q4, :invalid_config, &edit_config(&1, fn c -> Map.delete(c, "quantization") end)}
    ]
  end

  defp sharded_cases do
    sharded = "dense-bf16-tied-sharded"
    index = "model.safetensors.index.json"

    [
      {"shard-missing", sharded, :io, &File.rm!(Path.join(&1, "model-00002-of-00002.safetensors"))},
      {"index-malformed", sharded, :invalid_file, &File.write!(Path.join(&1, index), "{\"weight_map\": [")},
      {"index-wrong-shard", sharded, :missing_tensor,
       &edit_file(&1, index, fn t -> all_in_first_shard(t) end)}
    ]
  end

  # --- editing helpers ---

  defp edit_file(dir, name, fun) do
    path = Path.join(dir, name)
    File.write!(path, path |> File.read!() |> fun.())
  end

  defp edit_bytes(dir, fun), do: edit_file(dir, @weights, fun)

  defp edit_config(dir, fun),
    do: edit_file(dir, "config.json", &(&1 |> JSON.decode!() |> fun.() |> JSON.encode!()))

  defp set_config(dir, key, value), do: edit_config(dir, &Map.put(&1, key, value))

  # JSON has no NaN; Python's json writes it bare, and so do some hand-edited configs.
  defp nan_eps(text), do: String.replace(text, ~r/"rms_norm_eps": [^,\n]+/, ~s("rms_norm_eps": NaN))

  defp cut(bin, at) when is_float(at), do: binary_part(bin, 0, trunc(byte_size(bin) * at))
  defp cut(bin, at) when at < 0, do: binary_part(bin, 0, byte_size(bin) + at)
  defp cut(bin, at), do: binary_part(bin, 0, min(at, byte_size(bin)))

  defp seeded_bytes(n) do
    state = :rand.seed_s(:exsss, {6, 6, 6})
    {bytes, _} = Enum.map_reduce(1..n, state, fn _, s -> :rand.uniform_s(256, s) end)
    bytes |> Enum.map(&(&1 - 1)) |> :erlang.list_to_binary()
  end

  defp edit_header_text(dir, fun) do
    edit_bytes(dir, fn <<n::64-little, header::binary-size(n), data::binary>> ->
      new = fun.(header)
      <<byte_size(new)::64-little, new::binary, data::binary>>
    end)
  end

  defp edit_header(dir, fun), do: edit_header_text(dir, &(&1 |> JSON.decode!() |> fun.() |> JSON.encode!()))
  defp edit_entry(dir, name, fun), do: edit_header(dir, &Map.update!(&1, name, fun))

  defp rename_entry(dir, from, to),
    do: edit_header(dir, fn h -> h |> Map.delete(from) |> Map.put(to, h[from]) end)

  defp copy_entry(dir, from, to), do: edit_header(dir, &Map.put(&1, to, &1[from]))

  defp all_in_first_shard(index_text) do
    index = JSON.decode!(index_text)
    first = index["weight_map"] |> Map.values() |> Enum.min()
    JSON.encode!(%{index | "weight_map" => Map.new(index["weight_map"], fn {k, _} -> {k, first} end)})
  end

  defp shift_end(%{"data_offsets" => [a, b]} = entry, by), do: %{entry | "data_offsets" => [a, b + by]}
end
