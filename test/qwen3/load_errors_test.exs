defmodule Qwen3.LoadErrorsTest do
  # Broken checkpoints made from a good fixture: each load fails with a tagged error before
  # any graph is built, and the VM goes on to run a normal generation.
  use ExUnit.Case, async: true

  alias Qwen3.{Fixtures, Model}

  @moduletag :tmp_dir

  defp copy_fixture(tmp, variant \\ "dense-f32-tied") do
    dir = Path.join(tmp, variant)
    File.mkdir_p!(tmp)
    File.cp_r!(Fixtures.path(variant), dir)
    dir
  end

  defp edit_config(dir, fun) do
    path = Path.join(dir, "config.json")
    File.write!(path, path |> File.read!() |> fun.())
  end

  defp load_error(dir), do: elem(Model.load(dir), 1)

  test "missing directory and missing weights", %{tmp_dir: tmp} do
    assert %Qwen3.Error{kind: :not_found} = load_error(Path.join(tmp, "nope"))
    dir = copy_fixture(tmp)
    File.rm!(Path.join(dir, "model.safetensors"))
    assert %Qwen3.Error{kind: :io, message: msg} = load_error(dir)
    assert msg =~ "safetensors"
  end

  test "config without rope_theta is rejected, never defaulted", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp)
    edit_config(dir, &String.replace(&1, ~r/"rope_theta": [0-9.e+]+,/, ""))
    assert %Qwen3.Error{kind: :invalid_config, message: msg} = load_error(dir)
    assert msg =~ "rope_theta"
  end

  test "malformed config and unsupported settings", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp)
    edit_config(dir, fn _ -> "{not json" end)
    assert %Qwen3.Error{kind: :invalid_config} = load_error(dir)

    dir = copy_fixture(tmp, "q4-g64-tied")
    edit_config(dir, &String.replace(&1, ~s("bits": 4), ~s("bits": 7)))
    assert %Qwen3.Error{kind: :invalid_config, message: msg} = load_error(dir)
    assert msg =~ "bits 7"
  end

  test "quantization settings that do not match the tensors", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp, "q4-g64-tied")
    edit_config(dir, &String.replace(&1, ~s("group_size": 64), ~s("group_size": 32)))
    assert %Qwen3.Error{kind: :invalid_argument, message: msg} = load_error(dir)
    assert msg =~ "group size 32"
  end

  test "truncated and garbage safetensors", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp)
    file = Path.join(dir, "model.safetensors")
    bytes = File.read!(file)
    File.write!(file, binary_part(bytes, 0, div(byte_size(bytes), 2)))
    assert %Qwen3.Error{kind: :invalid_file} = load_error(dir)

    File.write!(file, :crypto.strong_rand_bytes(4096))
    assert %Qwen3.Error{kind: :invalid_file} = load_error(dir)
  end

  test "a model with the wrong layer count misses tensors; extra tensors are refused", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp)
    edit_config(dir, &String.replace(&1, ~s("num_hidden_layers": 2), ~s("num_hidden_layers": 3)))
    assert %Qwen3.Error{kind: :missing_tensor, message: msg} = load_error(dir)
    assert msg =~ "model.layers.2"

    dir = copy_fixture(Path.join(tmp, "b"))
    edit_config(dir, &String.replace(&1, ~s("num_hidden_layers": 2), ~s("num_hidden_layers": 1)))
    assert %Qwen3.Error{kind: :invalid_argument, message: msg} = load_error(dir)
    assert msg =~ "do not belong"
  end

  test "tensors with wrong shapes", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp)
    edit_config(dir, &String.replace(&1, ~s("intermediate_size": 256), ~s("intermediate_size": 255)))
    assert %Qwen3.Error{kind: :invalid_argument, message: msg} = load_error(dir)
    assert msg =~ "gate_proj"
  end

  test "a sharded index that names a missing shard", %{tmp_dir: tmp} do
    dir = copy_fixture(tmp, "dense-bf16-tied-sharded")
    File.rm!(Path.join(dir, "model-00002-of-00002.safetensors"))
    assert %Qwen3.Error{kind: :io, message: msg} = load_error(dir)
    assert msg =~ "missing"
  end

  test "bad options and bad token ids are refused; the VM still generates" do
    assert_raise ArgumentError, fn -> Model.load(Fixtures.path("dense-f32-tied"), colour: :red) end

    assert {:error, %Qwen3.Error{kind: :invalid_argument}} =
             Model.load(Fixtures.path("dense-f32-tied"), dtype: :s8)

    model = Model.load!(Fixtures.path("dense-f32-tied"))

    assert {:error, %Qwen3.Error{kind: :invalid_argument, message: msg}} =
             Qwen3.Generate.generate([1, 5000], model, max_new_tokens: 2)

    assert msg =~ "5000"

    assert {:error, %Qwen3.Error{kind: :cache_overflow}} =
             Qwen3.Generate.generate(Enum.to_list(1..10), model, max_len: 8)

    assert {:ok, {[_, _], _}} = Qwen3.Generate.generate([1, 2, 3], model, max_new_tokens: 2)
  end
end
